"""Snakemake rule finetune: a LoRA/QLoRA adapter, its last checkpoints, the loss table and curve."""

import _project  # noqa: F401 - puts the project on sys.path (conda environments lack it)

from react.finetune import finetune, resolve_hyperparameters
from react.provenance import make_provenance
from react.workflow import logged

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
