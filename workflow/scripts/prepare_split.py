"""Snakemake rule prepare_split: one HotPotQA split as results/data/hotpotqa/{split}.parquet."""

from react.pipeline.jobs import logged, start

start(snakemake)  # first: the job's thread limit, before numpy sizes its pools

from react import paths
from react.data.hotpotqa import prepare_split
from react.provenance import make_provenance

with logged(snakemake):
    spec = dict(snakemake.params.spec)
    prepare_split(
        spec,
        snakemake.wildcards.split,
        snakemake.output[0],
        make_provenance("prepare_split", spec),
        download_dir=paths.DOWNLOAD_DIR,
    )
