"""Snakemake rule table: results/table.csv and results/results.duckdb from the evaluation files."""

import json
from pathlib import Path

import _project  # noqa: F401 - puts the project on sys.path (conda environments lack it)

from react.report import build_results
from react.workflow import logged

with logged(snakemake):
    finetuned = [
        (model, info["base_model"], info["dataset"], json.loads(Path(info["manifest"]).read_text())["n_examples"])
        for model, info in snakemake.params.finetuned.items()
    ]
    published = snakemake.input.published[0] if snakemake.input.published else None
    build_results(list(snakemake.input.evals), published, snakemake.output.table, snakemake.output.db,
                  finetuned=finetuned)
