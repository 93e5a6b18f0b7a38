"""Snakemake rule table: results/table.csv and results/results.duckdb from the evaluation files."""

import json
from pathlib import Path

from react.report import build_results
from react.workflow import logged

with logged(snakemake):  # noqa: F821 - injected by Snakemake
    finetuned = [
        (model, info["base_model"], info["dataset"], json.loads(Path(info["manifest"]).read_text())["n_examples"])
        for model, info in snakemake.params.finetuned.items()
    ]
    published = snakemake.input.published[0] if snakemake.input.published else None
    build_results(list(snakemake.input.evals), published, snakemake.output.table, snakemake.output.db,
                  finetuned=finetuned)
