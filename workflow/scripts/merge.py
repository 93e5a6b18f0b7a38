"""Snakemake rule merge: the lowest-loss kept checkpoint merged into its base model."""

from react.pipeline.jobs import logged, start

start(snakemake)  # first: the job's thread limit, before numpy sizes its pools

from react.provenance import make_provenance
from react.training.checkpoints import merge, pick_checkpoint

with logged(snakemake):
    step, checkpoint, loss = pick_checkpoint(snakemake.input.checkpoints, snakemake.input.loss)
    run = snakemake.params.run
    merge(
        snakemake.params.base,
        checkpoint,
        snakemake.output[0],
        provenance={
            **make_provenance("merge", {"run": snakemake.wildcards.run, **run},
                              {"dataset": snakemake.input.dataset, "loss": snakemake.input.loss}),
            "run": snakemake.wildcards.run,
            "dataset": run["dataset"],
        },
    )
