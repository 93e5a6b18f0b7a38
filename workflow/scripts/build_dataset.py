"""Snakemake rule build_dataset: the filtered, leakage-checked finetuning set and its manifest."""

from react.pipeline.jobs import logged, start

start(snakemake)  # first: the job's thread limit, before numpy sizes its pools

from react.data.training_sets import build_dataset

with logged(snakemake):
    spec = snakemake.params.spec
    build_dataset(
        [(name, files) for name, files in snakemake.params.sources.items()],
        snakemake.input.instruction,
        snakemake.input.eval_split,
        snakemake.output.jsonl,
        snakemake.output.manifest,
        fraction=spec["fraction"],
        max_examples=spec["max_examples"],
        seed=spec["seed"],
        name=snakemake.wildcards.dataset,
    )
