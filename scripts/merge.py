"""Snakemake rule merge: the lowest-loss kept checkpoint merged into its base model."""

import _project  # noqa: F401 - puts the project on sys.path (conda environments lack it)

from react.finetune import merge, pick_checkpoint
from react.provenance import make_provenance
from react.workflow import logged

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
