"""Snakemake rule build_index: the BM25 index that answers Search misses with similar titles."""

from react.pipeline.jobs import logged, start

start(snakemake)  # first: the job's thread limit, before numpy sizes its pools

from react.search.index import build_index

with logged(snakemake):
    build_index(snakemake.input[0], snakemake.output[0])
