"""Snakemake rule build_index: the BM25 index that answers Search misses with similar titles."""

import _project  # noqa: F401 - puts the project on sys.path (conda environments lack it)

from react.wiki import build_index
from react.workflow import logged

with logged(snakemake):
    build_index(snakemake.input[0], snakemake.output[0])
