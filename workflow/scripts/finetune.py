"""Snakemake rule finetune: a LoRA/QLoRA adapter, its last checkpoints, the loss table and curve."""

from react.pipeline.jobs import logged, start

start(snakemake)  # first: the job's thread limit, before numpy sizes its pools

from react.provenance import make_provenance
from react.training.finetune import finetune, resolve_hyperparameters

with logged(snakemake):
    run = snakemake.params.run
    hyperparameters = resolve_hyperparameters(run["preset"], run["hyperparameters"])
    finetune(
        snakemake.params.base,
        snakemake.input.dataset,
        snakemake.output.checkpoints,
        snakemake.output.loss,
        snakemake.output.plot,
        hyperparameters,
        threads=snakemake.threads,
        provenance=make_provenance("finetune", {"run": snakemake.wildcards.run, **run},
                                   {"dataset": snakemake.input.dataset}),
    )
