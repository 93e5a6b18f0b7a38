"""Snakemake rule prepare_split: one HotPotQA split as results/data/hotpotqa/{split}.parquet."""

import _project  # noqa: F401 - puts the project on sys.path (conda environments lack it)

from react.hotpotqa import prepare_split
from react.provenance import make_provenance
from react.workflow import logged

with logged(snakemake):
    spec = dict(snakemake.params.spec)
    prepare_split(
        spec,
        snakemake.wildcards.split,
        snakemake.output[0],
        make_provenance("prepare_split", spec),
        download_dir="results/downloads",
    )
