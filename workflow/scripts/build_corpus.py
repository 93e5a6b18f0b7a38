"""Snakemake rule build_corpus: the offline Wikipedia (title, sentences) from the splits' contexts or a source."""

from react.pipeline.jobs import logged, start

start(snakemake)  # first: the job's thread limit, before numpy sizes its pools

from react.provenance import make_provenance
from react.search.sources.registry import build_corpus, corpus_source

with logged(snakemake):
    build_corpus(corpus_source(snakemake.params.spec), snakemake.output[0],
                 make_provenance("build_corpus", {"corpus": snakemake.wildcards.corpus}),
                 split_parquets=list(snakemake.input))
