"""Snakemake rule download_corpus: a corpus archive from its URL, checked by its md5/sha256."""

import _project  # noqa: F401 - puts the project on sys.path (conda environments lack it)

from react.corpus_sources import download_archive
from react.workflow import logged

with logged(snakemake):
    download_archive(dict(snakemake.params.spec), snakemake.output[0])
