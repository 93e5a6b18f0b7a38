"""Snakemake rule download_corpus: a corpus archive from its URL, checked by its md5/sha256."""

from react.pipeline.jobs import logged, start

start(snakemake)  # first: the job's thread limit, before numpy sizes its pools

from react.search.sources.abstracts import download_archive
from react.search.sources.registry import corpus_source

with logged(snakemake):
    download_archive(corpus_source(snakemake.params.spec), snakemake.output[0])
