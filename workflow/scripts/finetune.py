"""Snakemake rule finetune: a LoRA/QLoRA adapter, its last checkpoints, the loss table and curve."""

from react.pipeline.jobs import logged, start

start(snakemake)  # first: the job's thread limit, before numpy sizes its pools

from react.provenance import make_provenance
from react.training.presets import Hyperparameters
from react.training.trainer import RunFiles, finetune

with logged(snakemake):
    run = snakemake.params.run
    finetune(
        snakemake.params.base,
        snakemake.input.dataset,
        Hyperparameters.from_preset(run["preset"], run["hyperparameters"]),
        RunFiles(snakemake.output.checkpoints, snakemake.output.loss, snakemake.output.plot),
        threads=snakemake.threads,
        provenance=make_provenance("finetune", {"run": snakemake.wildcards.run, **run},
                                   {"dataset": snakemake.input.dataset}),
        form=run["format"],
    )
