"""Snakemake rule merge: the lowest-loss kept checkpoint merged into its base model."""

from react.finetune import merge, pick_checkpoint
from react.provenance import make_provenance
from react.workflow import logged

with logged(snakemake):  # noqa: F821 - injected by Snakemake
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
