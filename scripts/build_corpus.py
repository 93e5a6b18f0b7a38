"""Snakemake rule build_corpus: the offline Wikipedia (title, sentences) from the splits' contexts."""

import _project  # noqa: F401 - puts the project on sys.path (conda environments lack it)

from react.provenance import make_provenance
from react.wiki import build_corpus
from react.workflow import logged

with logged(snakemake):
    build_corpus(list(snakemake.input), snakemake.output[0],
                 make_provenance("build_corpus", {"corpus": snakemake.wildcards.corpus}))
