"""The comparison table and the results database, made by the SQL files in src/react/results/sql/."""

from __future__ import annotations

import logging
from importlib.resources import files
from pathlib import Path

import duckdb

from react.io import atomic_path, read_parquet
from react.schemas import EPISODE_SCHEMA

log = logging.getLogger(__name__)

# The `duckdb` command line from PyPI (duckdb-cli) lags the Python package by a
# storage version; writing this one keeps `duckdb results/results.duckdb` working.
STORAGE_VERSION = "v1.5.0"


def sql(name: str) -> str:
    return files("react.results").joinpath("sql", name).read_text(encoding="utf-8")


def build_results(eval_files: list[str | Path], published_csv: str | Path | None,
                  table_csv: str | Path, db_path: str | Path,
                  finetuned: list[tuple] = ()) -> None:
    """Write ``db_path`` (tables + views `episodes`, `paired`, `summary`) and ``table_csv`` (= `summary`).

    ``finetuned`` lists the trained models: (model, base_model, dataset, n_train), optionally
    followed by the method (default sft; grpo, sft+grpo for RL runs) and the model at the root
    of the chain (default base_model), which keeps an RL-after-SFT run next to its family.
    """
    for path in eval_files:
        read_parquet(path, EPISODE_SCHEMA)  # fail on a corrupt or off-contract file, naming it
    with atomic_path(db_path) as tmp_db:
        tmp_db.unlink()  # duckdb creates the file itself
        with duckdb.connect() as con:
            con.execute(f"ATTACH '{tmp_db}' AS results (STORAGE_VERSION '{STORAGE_VERSION}')")
            con.execute("USE results")
            con.execute("SET VARIABLE eval_files = ?", [[str(p) for p in eval_files]])
            con.execute(sql("tables.sql"))
            if finetuned:
                con.executemany(sql("finetuned.sql"), [_trained_row(*row) for row in finetuned])
            if published_csv:
                con.execute("SET VARIABLE published_csv = ?", [str(published_csv)])
                con.execute(sql("published.sql"))
            con.execute(sql("views.sql"))
            with atomic_path(table_csv) as tmp_csv:
                # The view's ORDER BY (src/react/results/sql/views.sql) gives the table its row order.
                con.execute(f"COPY (FROM summary) TO '{tmp_csv}' (HEADER)")
            for row in con.sql("FROM summary").fetchall():
                log.info("%s", row)
            con.execute("USE memory")
            con.execute("DETACH results")


def _trained_row(model: str, base_model: str, dataset: str, n_train: int, method: str = "sft",
                 root_model: str | None = None) -> list:
    return [model, base_model, dataset, n_train, method, root_model or base_model]
