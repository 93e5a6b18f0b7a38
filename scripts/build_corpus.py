"""Snakemake rule build_corpus: the offline Wikipedia (title, sentences) from the splits' contexts or a source."""

import _project  # noqa: F401 - puts the project on sys.path (conda environments lack it)

from react.corpus_sources import build_corpus
from react.provenance import make_provenance
from react.workflow import logged

with logged(snakemake):
    spec = dict(snakemake.params.spec)
    build_corpus(spec, snakemake.output[0], make_provenance("build_corpus", {"corpus": snakemake.wildcards.corpus}),
                 split_parquets=list(snakemake.input) if "splits" in spec else ())
