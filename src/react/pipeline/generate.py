"""Teacher trajectories on a split: N questions x K samples, cut into M shards (one job each)."""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import pyarrow as pa

from react.agent.loop import AgentConfig, Task
from react.config.settings import TeacherSettings
from react.data.oracle import ORACLE_LABEL, ORACLE_MODEL, oracle_episode
from react.inference.registry import ModelRef
from react.io import read_parquet
from react.pipeline.evaluate import (
    Output,
    Prompt,
    QuestionSample,
    Run,
    WikiFiles,
    run_inputs,
    run_model,
    write_episodes,
)
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


def generate_shard(teacher: TeacherSettings, shard: int, model: ModelRef | None, questions: QuestionSample,
                   wiki_files: WikiFiles, prompt: Prompt, agent: AgentConfig, output: Output) -> pa.Table:
    """Write shard ``shard`` (from 0) of ``teacher.shards`` of the teacher's episodes (EPISODE_SCHEMA) atomically.

    ``model`` is the teacher's model, None for the oracle.
    """
    n_shards = teacher.shards
    sample = questions.tasks()
    tasks = shard_tasks(sample, teacher.samples, shard, n_shards)
    wiki = wiki_files.open()
    started = time.perf_counter()
    log.info("teacher %s, shard %d of %d: %d episodes (%d questions x %d samples overall)", teacher.name, shard + 1,
             n_shards, len(tasks), len(sample), teacher.samples)
    try:
        if model is None:
            rows_by_id = {r["id"]: r for r in read_parquet(questions.split_path, SPLIT_SCHEMA).to_pylist()}
            run = Run([oracle_episode(t, rows_by_id[t.id], wiki.new_env(agent.protocol), prompt.text, agent)
                       for t in tasks], None)
            model_name, backend_name = ORACLE_MODEL, ORACLE_MODEL
        else:
            run = run_model(model, tasks, wiki, prompt, agent)
            model_name, backend_name = model.name, model.backend
    finally:
        wiki.close()
    table = write_episodes(
        run, output, step="generate", model=model_name, backend=backend_name, agent=agent, prompt=prompt,
        wiki=wiki, inputs=run_inputs(questions, wiki_files, prompt, model),
        extra={"teacher": teacher.name, "teacher_label": ORACLE_LABEL if model is None else model.name,
               "shard": shard, "n_shards": n_shards},
    )
    correct = sum(table.column("em").to_pylist())
    log.info("wrote %s: %d episodes, %d correct, %.0f s", output.path, table.num_rows, correct,
             time.perf_counter() - started)
    return table
