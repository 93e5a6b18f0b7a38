"""Teacher trajectories on a split: N questions x K samples, cut into M shards (one job each)."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa

from react.agent import AgentConfig, Task, episode_row, run_agent
from react.backends import make_backend
from react.evaluation import ModelRef, load_tasks, progress_logger, read_prefix
from react.io import read_parquet, sha256_text, write_parquet
from react.oracle import ORACLE_LABEL, ORACLE_MODEL, oracle_episode
from react.provenance import make_provenance
from react.schemas import EPISODE_SCHEMA, SPLIT_SCHEMA
from react.wiki import Corpus, WikiEnv

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
    corpus_path: str | Path,
    index_path: str | Path,
    prompt_path: str | Path,
    agent: AgentConfig,
    shard: int,
    n_shards: int,
    out_path: str | Path,
    provenance_config: dict[str, Any],
) -> pa.Table:
    """Write one shard of teacher episodes (EPISODE_SCHEMA) atomically."""
    prefix = read_prefix(prompt_path, "few-shot")
    questions = load_tasks(split_path, spec["split"], spec["n_questions"], spec["seed"], spec["population"])
    tasks = shard_tasks(questions, spec["samples"], shard, n_shards)
    corpus = Corpus.load(corpus_path, index_path)
    started = time.perf_counter()
    log.info("teacher %s, shard %d of %d: %d episodes (%d questions x %d samples overall)", teacher, shard + 1,
             n_shards, len(tasks), len(questions), spec["samples"])
    if model is None:
        rows_by_id = {r["id"]: r for r in read_parquet(split_path, SPLIT_SCHEMA).to_pylist()}
        episodes = [oracle_episode(t, rows_by_id[t.id], WikiEnv(corpus), prefix, agent.seed) for t in tasks]
        model_name, backend_name = ORACLE_MODEL, ORACLE_MODEL
    else:
        backend = make_backend(model.backend, model.location, model.name, model.options)
        try:
            episodes = run_agent(tasks, backend, lambda: WikiEnv(corpus), prefix, agent,
                                 on_step=progress_logger(len(tasks), started))
        finally:
            backend.close()
        model_name, backend_name = model.name, model.backend
    prompt_sha = sha256_text(prefix)
    rows = [episode_row(e, model=model_name, backend=backend_name, config=agent, prompt_sha256=prompt_sha,
                        corpus_sha256=corpus.sha256) for e in episodes]
    table = pa.Table.from_pylist(rows, schema=EPISODE_SCHEMA)
    inputs = {"split": split_path, "corpus": corpus_path, "index": index_path, "prompt": prompt_path}
    if model is not None and Path(model.location).exists():
        inputs["model"] = model.location
    provenance = make_provenance("generate", provenance_config, inputs)
    provenance.update(teacher=teacher, teacher_label=ORACLE_LABEL if model is None else model.name,
                      shard=shard, n_shards=n_shards, prompt_sha256=prompt_sha, corpus_sha256=corpus.sha256)
    write_parquet(table, out_path, provenance)
    correct = sum(r["em"] for r in rows)
    log.info("wrote %s: %d episodes, %d correct, %.0f s", out_path, len(rows), correct,
             time.perf_counter() - started)
    return table
