"""Snakemake rule build_index: the BM25 index that answers Search misses with similar titles."""

from react.wiki import build_index
from react.workflow import logged

with logged(snakemake):  # noqa: F821 - injected by Snakemake
    build_index(snakemake.input[0], snakemake.output[0])
