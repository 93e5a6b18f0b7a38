"""Snakemake rule merge_rl: a GRPO run's adapter (its last step) merged into the start model."""

from react.pipeline.jobs import logged, start

start(snakemake)  # first: the job's thread limit, before numpy sizes its pools

from react.provenance import make_provenance
from react.training.checkpoints import merge

with logged(snakemake):
    run = snakemake.params.run
    merge(
        snakemake.params.start,
        snakemake.input.adapter,
        snakemake.output[0],
        provenance={
            **make_provenance("merge_rl", {"run": snakemake.wildcards.rl, **run},
                              {"adapter": snakemake.input.adapter, "steps": snakemake.input.metrics}),
            "run": snakemake.wildcards.rl,
            "start": run["start"],
            "method": "grpo",
        },
    )
