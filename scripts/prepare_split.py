"""Snakemake rule prepare_split: one HotPotQA split as results/data/hotpotqa/{split}.parquet."""

from react.hotpotqa import prepare_split
from react.provenance import make_provenance
from react.workflow import logged

with logged(snakemake):  # noqa: F821 - injected by Snakemake
    spec = dict(snakemake.params.spec)
    prepare_split(
        spec,
        snakemake.wildcards.split,
        snakemake.output[0],
        make_provenance("prepare_split", spec),
        download_dir="results/downloads",
    )
