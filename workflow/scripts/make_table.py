"""Snakemake rule table: results/table.csv and results/results.duckdb from the evaluation files."""

from react.pipeline.jobs import logged, start

start(snakemake)  # first: the job's thread limit, before numpy sizes its pools

import json
from pathlib import Path

from react.results.tables import build_results

with logged(snakemake):
    def count(info):
        """The training examples (or questions) a run's manifest or summary counts, under info["count"]."""
        value = json.loads(Path(info["manifest"]).read_text())
        for key in info["count"].split("."):
            value = value[key]
        return value

    finetuned = [
        (model, info["base_model"], info["dataset"], count(info), info["method"], info["root_model"])
        for model, info in snakemake.params.finetuned.items()
    ]
    published = snakemake.input.published[0] if snakemake.input.published else None
    build_results(list(snakemake.input.evals), published, snakemake.output.table, snakemake.output.db,
                  finetuned=finetuned)
