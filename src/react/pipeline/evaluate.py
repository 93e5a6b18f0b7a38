"""Evaluate one model: sample questions, run the agent, write the episode Parquet."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from react.agent.loop import AgentConfig, Episode, Task, episode_row, run_agent
from react.agent.metrics import exact_match
from react.data.hotpotqa import POPULATION, sample_questions
from react.environment.wikis import Wiki, open_wiki
from react.inference.backends import Sampling, available_cpus, make_backend
from react.io import read_parquet, sha256_text, write_parquet
from react.provenance import make_provenance
from react.schemas import EPISODE_SCHEMA, SPLIT_SCHEMA
from react.search.index import INDEX_META

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelRef:
    name: str
    location: str  # a folder, or a Hugging Face id
    backend: str
    options: dict[str, Any]  # backend constructor options (dtype, batch_size, ...)

    @classmethod
    def from_config(cls, name: str, location: str, spec: dict[str, Any], backends: dict[str, Any],
                    threads: int | None) -> ModelRef:
        """A model entry of the configuration (with the `backends` section) as something to load."""
        return cls(name, location, spec["backend"], backend_options(spec, backends, threads))


def agent_config(agent: dict[str, Any]) -> AgentConfig:
    return AgentConfig(
        max_steps=agent["max_steps"],
        sampling=Sampling(agent["max_new_tokens"], agent["temperature"], agent["top_p"]),
        seed=agent["seed"],
        protocol=agent["protocol"],
    )


def backend_options(model_spec: dict[str, Any], backends: dict[str, Any], threads: int | None) -> dict[str, Any]:
    """Constructor options of the model's backend from the model entry and the `backends` section."""
    quantization = None if model_spec["quantization"] == "none" else model_spec["quantization"]
    if threads:  # `--cores 8` on a 2-core laptop: more threads than CPUs only thrash
        threads = min(threads, len(available_cpus()))
    common = {"dtype": model_spec["dtype"], "threads": threads, "quantization": quantization,
              "trust_remote_code": model_spec["trust_remote_code"]}
    if model_spec["backend"] == "vllm":
        vllm = dict(backends["vllm"])
        for key in ("max_model_len", "tensor_parallel_size"):
            if model_spec.get(key):
                vllm[key] = model_spec[key]
        return {**common, **vllm}
    if model_spec["backend"] == "openai":
        served = {"base_url": model_spec["url"], "served_model": model_spec.get("served_model"),
                  "api_key_env": model_spec.get("api_key_env"), "max_model_len": model_spec["max_model_len"],
                  "tokenizer": model_spec.get("tokenizer") or model_spec.get("hf_id") or model_spec.get("path")}
        return {**common, **{k: v for k, v in served.items() if v is not None}, **backends["openai"]}
    return {**common, **backends["transformers"]}


def load_tasks(split_path: str | Path, split: str, n: int | None, seed: int,
               population: int | None = None) -> list[Task]:
    table = read_parquet(split_path, SPLIT_SCHEMA)
    population = population or POPULATION.get(split)
    rows = table.select(["id", "index", "question", "answer"]).to_pylist()
    positions = sample_questions(table, n, seed=seed, population=population)
    return [Task(rows[p]["id"], rows[p]["question"], rows[p]["answer"], split, rows[p]["index"]) for p in positions]


def progress_logger(total: int, started: float, bar: bool | None = None) -> Callable[[int, list[Episode]], None]:
    """One log line per agent step (episodes done, EM so far); on a terminal also a progress bar.

    A log file gets at most ``max_steps`` lines per run, never a bar's carriage returns.
    """
    bar = sys.stderr.isatty() if bar is None else bar
    progress = None
    if bar:
        from tqdm import tqdm

        progress = tqdm(total=total, unit="question", desc="episodes", dynamic_ncols=True)

    def on_step(step: int, episodes: list[Episode]) -> None:
        done = [e for e in episodes if e.done]
        correct = sum(exact_match(e.prediction or "", e.task.answer) for e in done if e.finish_reason == "finished")
        em = 100 * correct / max(1, len(done))
        log.info("step %d: %d/%d episodes done, %d correct so far (EM %.1f%% of done), %.0f s", step, len(done),
                 total, correct, em, time.perf_counter() - started)
        if progress is not None:
            progress.update(len(done) - progress.n)
            progress.set_postfix(step=step, em=f"{em:.1f}%")
            if len(done) == total:
                progress.close()

    return on_step


def run_model(model: ModelRef, tasks: list[Task], wiki: Wiki, prefix: str,
              config: AgentConfig, strip_question: bool = False) -> list[Episode]:
    """Start the model's backend, run the agent over ``tasks``, and stop the backend."""
    started = time.perf_counter()
    backend = make_backend(model.backend, model.location, model.name, model.options)
    log.info("backend ready in %.0f s", time.perf_counter() - started)
    try:
        return run_agent(tasks, backend, wiki.new_env, prefix, config,
                         on_step=progress_logger(len(tasks), time.perf_counter()), strip_question=strip_question)
    finally:
        backend.close()


def wiki_inputs(split_path: str | Path, corpus_path: str | Path | None, index_path: str | Path | None,
                prompt_files: list[str | Path]) -> dict[str, str | Path]:
    """The files a run read (a live Wikipedia has none: its pages are listed in the provenance).

    The index stands for itself by its metadata (the corpus hash and size it was built from,
    the bm25s version): its binary files order the vocabulary by Python's per-process string
    hashing, so two builds of the same corpus differ in bytes, never in search results.
    """
    if index_path is not None:
        index_path = Path(index_path) / INDEX_META
    inputs = {"split": split_path, "corpus": corpus_path, "index": index_path}
    # "prompt" is the (first) prompt file, as before; ReAct's recipe adds its JSON of examples.
    inputs.update(zip(["prompt", *(f"prompt.{i}" for i in range(1, len(prompt_files)))], prompt_files))
    return {k: v for k, v in inputs.items() if v is not None}


def write_episodes(
    episodes: list[Episode],
    out_path: str | Path,
    *,
    step: str,
    model_name: str,
    backend_name: str,
    config: AgentConfig,
    prompt_kind: str,
    prefix: str,
    wiki: Wiki,
    inputs: dict[str, str | Path],
    model_location: str | None,
    provenance_config: dict[str, Any],
    extra: dict[str, Any],
) -> pa.Table:
    """Episode rows (EPISODE_SCHEMA) written atomically, with the step's provenance."""
    prompt_sha = sha256_text(prefix)
    rows = [episode_row(e, model=model_name, backend=backend_name, config=config, prompt=prompt_kind,
                        prompt_sha256=prompt_sha, corpus_sha256=wiki.sha256) for e in episodes]
    table = pa.Table.from_pylist(rows, schema=EPISODE_SCHEMA)
    if model_location is not None and Path(model_location).exists():  # hub ids are not files
        inputs = {**inputs, "model": model_location}
    provenance = make_provenance(step, provenance_config, inputs)
    provenance.update(prompt_sha256=prompt_sha, corpus_sha256=wiki.sha256, **wiki.provenance(), **extra)
    write_parquet(table, out_path, provenance)
    return table


def evaluate_model(
    *,
    model: ModelRef,
    split_path: str | Path,
    split: str,
    corpus_name: str,
    corpus_spec: dict[str, Any],
    corpus_path: str | Path | None,
    index_path: str | Path | None,
    prefix: str,
    prompt_files: list[str | Path],
    prompt_kind: str,
    agent: dict[str, Any],
    n_questions: int | None,
    sample_seed: int,
    population: int | None,
    out_path: str | Path,
    provenance_config: dict[str, Any],
) -> pa.Table:
    tasks = load_tasks(split_path, split, n_questions, sample_seed, population)
    wiki = open_wiki(corpus_name, corpus_spec, corpus_path, index_path)
    config = agent_config(agent)
    log.info("model %s (%s, backend %s, %s prompt): %d questions from %s", model.name, model.location,
             model.backend, prompt_kind, len(tasks), split)
    started = time.perf_counter()
    try:
        # The instruction prompt is the training format, whose question the article strips.
        episodes = run_model(model, tasks, wiki, prefix, config, strip_question=prompt_kind == "instruction")
    finally:
        wiki.close()
    table = write_episodes(
        episodes, out_path, step="evaluate", model_name=model.name, backend_name=model.backend, config=config,
        prompt_kind=prompt_kind, prefix=prefix, wiki=wiki,
        inputs=wiki_inputs(split_path, corpus_path, index_path, prompt_files),
        model_location=model.location, provenance_config=provenance_config,
        extra={"model": model.name, "model_location": model.location},
    )
    em = sum(table.column("em").to_pylist())
    log.info("wrote %s: EM %d/%d = %.1f%% in %.0f s", out_path, em, table.num_rows,
             100 * em / max(1, table.num_rows), time.perf_counter() - started)
    return table
