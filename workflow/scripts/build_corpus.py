"""Snakemake rule build_corpus: the offline Wikipedia (title, sentences) from the splits' contexts or a source."""

from react.pipeline.jobs import logged, start

start(snakemake)  # first: the job's thread limit, before numpy sizes its pools

from react.provenance import make_provenance
from react.search.sources import build_corpus

with logged(snakemake):
    spec = dict(snakemake.params.spec)
    build_corpus(spec, snakemake.output[0], make_provenance("build_corpus", {"corpus": snakemake.wildcards.corpus}),
                 split_parquets=list(snakemake.input) if "splits" in spec else ())
