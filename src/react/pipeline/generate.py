"""Teacher trajectories on a split: N questions x K samples, cut into M shards (one job each)."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa

from react.agent.loop import AgentConfig, Task
from react.data.oracle import ORACLE_LABEL, ORACLE_MODEL, oracle_episode
from react.environment.wikis import open_wiki
from react.io import read_parquet
from react.pipeline.evaluate import ModelRef, load_tasks, run_model, wiki_inputs, write_episodes
from react.schemas import SPLIT_SCHEMA

log = logging.getLogger(__name__)


def shard_tasks(tasks: list[Task], samples: int, shard: int, n_shards: int) -> list[Task]:
    """The tasks of one shard: every question repeated `samples` times, cut into contiguous shards.

    Contiguous rather than strided, so a shard holds whole questions with all
    their samples, and adding shards only splits existing ones.
    """
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} is outside 0..{n_shards - 1}")
    expanded = [replace(task, sample=k) for task in tasks for k in range(samples)]
    size, extra = divmod(len(expanded), n_shards)
    start = shard * size + min(shard, extra)
    return expanded[start : start + size + (1 if shard < extra else 0)]


def generate_shard(
    *,
    teacher: str,
    spec: dict[str, Any],
    model: ModelRef | None,
    split_path: str | Path,
    corpus_name: str,
    corpus_spec: dict[str, Any],
    corpus_path: str | Path | None,
    index_path: str | Path | None,
    prefix: str,
    prompt_files: list[str | Path],
    agent: AgentConfig,
    shard: int,
    n_shards: int,
    out_path: str | Path,
    provenance_config: dict[str, Any],
) -> pa.Table:
    """Write one shard of teacher episodes (EPISODE_SCHEMA) atomically."""
    questions = load_tasks(split_path, spec["split"], spec["n_questions"], spec["seed"], spec["population"])
    tasks = shard_tasks(questions, spec["samples"], shard, n_shards)
    wiki = open_wiki(corpus_name, corpus_spec, corpus_path, index_path)
    started = time.perf_counter()
    log.info("teacher %s, shard %d of %d: %d episodes (%d questions x %d samples overall)", teacher, shard + 1,
             n_shards, len(tasks), len(questions), spec["samples"])
    try:
        if model is None:
            rows_by_id = {r["id"]: r for r in read_parquet(split_path, SPLIT_SCHEMA).to_pylist()}
            episodes = [oracle_episode(t, rows_by_id[t.id], wiki.new_env(agent.protocol), prefix, agent)
                        for t in tasks]
            model_name, backend_name = ORACLE_MODEL, ORACLE_MODEL
        else:
            episodes = run_model(model, tasks, wiki, prefix, agent)
            model_name, backend_name = model.name, model.backend
    finally:
        wiki.close()
    table = write_episodes(
        episodes, out_path, step="generate", model_name=model_name, backend_name=backend_name, config=agent,
        prompt_kind="few-shot", prefix=prefix, wiki=wiki,
        inputs=wiki_inputs(split_path, corpus_path, index_path, prompt_files),
        model_location=model.location if model else None, provenance_config=provenance_config,
        extra={"teacher": teacher, "teacher_label": ORACLE_LABEL if model is None else model.name,
               "shard": shard, "n_shards": n_shards},
    )
    correct = sum(table.column("em").to_pylist())
    log.info("wrote %s: %d episodes, %d correct, %.0f s", out_path, table.num_rows, correct,
             time.perf_counter() - started)
    return table
