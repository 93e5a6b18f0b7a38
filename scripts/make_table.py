"""Snakemake rule table: results/table.csv and results/results.duckdb from the evaluation files."""

from react.report import build_results
from react.workflow import logged

with logged(snakemake):  # noqa: F821 - injected by Snakemake
    published = snakemake.input.published[0] if snakemake.input.published else None
    build_results(list(snakemake.input.evals), published, snakemake.output.table, snakemake.output.db)
