"""Snakemake rule build_dataset: the filtered, leakage-checked finetuning set and its manifest."""

import _project  # noqa: F401 - puts the project on sys.path (conda environments lack it)

from react.dataset import build_dataset
from react.workflow import logged

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
