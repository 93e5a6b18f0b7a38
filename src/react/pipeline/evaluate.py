"""Evaluate one model: sample questions, run the agent, write the episode Parquet.

A job is described by a few typed objects, built once by its script: the model
(react.inference.registry.ModelRef), the question sample, the Wikipedia it searches,
the prompt, the agent (react.config.settings) and the output.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from react.agent.forms import CHAT_FORMATS
from react.agent.loop import AgentConfig, Episode, Task, episode_row, run_agent
from react.agent.metrics import exact_match
from react.data.hotpotqa import POPULATION, sample_questions
from react.environment.wikis import Wiki, WikiSettings, open_wiki
from react.inference.chat import NoChatTemplate
from react.inference.registry import ModelRef, start_engine
from react.io import read_parquet, sha256_text, write_parquet
from react.provenance import make_provenance
from react.schemas import EPISODE_SCHEMA, SPLIT_SCHEMA
from react.search.index import INDEX_META

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QuestionSample:
    """Questions of a prepared split, sampled with the paper's protocol."""

    split_path: str | Path
    split: str
    n_questions: int | None  # None: all
    seed: int
    population: int | None  # size of the official split (None: known for dev and train)

    def tasks(self) -> list[Task]:
        return load_tasks(self.split_path, self.split, self.n_questions, self.seed, self.population)


@dataclass(frozen=True)
class WikiFiles:
    """The Wikipedia a run searches: a `corpus` entry of the configuration and, offline, its built files."""

    name: str
    settings: WikiSettings  # react.environment.wikis.wiki_settings of the corpus entry
    corpus_path: str | Path | None = None  # offline only
    index_path: str | Path | None = None

    def open(self) -> Wiki:
        return open_wiki(self.name, self.settings, self.corpus_path, self.index_path)


@dataclass(frozen=True)
class Prompt:
    text: str  # the prefix every question is appended to
    kind: str  # few-shot | instruction
    files: tuple[str | Path, ...]  # what it was read from (for the provenance)
    format: str = "raw"  # raw | chat | chat-inline: how it reaches the model (react.agent.forms)


@dataclass(frozen=True)
class Run:
    """The episodes of a model, and the chat template they were rendered with (None: raw text)."""

    episodes: list[Episode]
    chat_template_sha256: str | None


@dataclass(frozen=True)
class Output:
    path: str | Path
    config: dict[str, Any]  # the part of the configuration the step depends on (its provenance)


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


def run_model(model: ModelRef, tasks: list[Task], wiki: Wiki, prompt: Prompt, agent: AgentConfig) -> Run:
    """Start the model's engine, run the agent over ``tasks``, and stop the engine."""
    started = time.perf_counter()
    backend = start_engine(model)
    log.info("backend ready in %.0f s", time.perf_counter() - started)
    try:
        template = None
        if prompt.format in CHAT_FORMATS:
            if backend.chat_template is None:
                raise NoChatTemplate(f"model {model.name!r} ({model.location}) has no chat template, so it cannot "
                                     f"take the {prompt.format} format; use format raw")
            template = backend.chat_template.sha256
            log.info("%s format: chat template sha256 %s", prompt.format, template)
        # The instruction prompt is the training format, whose question the article strips.
        episodes = run_agent(tasks, backend, wiki.new_env, prompt.text, agent,
                             on_step=progress_logger(len(tasks), time.perf_counter()),
                             strip_question=prompt.kind == "instruction", form=prompt.format)
        return Run(episodes, template)
    finally:
        backend.close()


def run_inputs(questions: QuestionSample, wiki: WikiFiles, prompt: Prompt,
               model: ModelRef | None = None) -> dict[str, str | Path]:
    """The files a run read (a live Wikipedia has none: its pages are listed in the provenance).

    The index stands for itself by its metadata (the corpus hash and size it was built from,
    the bm25s version): its binary files order the vocabulary by Python's per-process string
    hashing, so two builds of the same corpus differ in bytes, never in search results.
    """
    index_path = Path(wiki.index_path) / INDEX_META if wiki.index_path is not None else None
    inputs = {"split": questions.split_path, "corpus": wiki.corpus_path, "index": index_path}
    # "prompt" is the (first) prompt file, as before; ReAct's recipe adds its JSON of examples.
    inputs.update(zip(["prompt", *(f"prompt.{i}" for i in range(1, len(prompt.files)))], prompt.files))
    if model is not None and Path(model.location).exists():  # hub ids and served names are not files
        inputs["model"] = model.location
    return {k: v for k, v in inputs.items() if v is not None}


def write_episodes(run: Run, output: Output, *, step: str, model: str, backend: str,
                   agent: AgentConfig, prompt: Prompt, wiki: Wiki, inputs: dict[str, str | Path],
                   extra: dict[str, Any]) -> pa.Table:
    """Episode rows (EPISODE_SCHEMA) of ``model`` on ``backend``, written atomically with the step's provenance."""
    prompt_sha = sha256_text(prompt.text)
    rows = [episode_row(e, model=model, backend=backend, config=agent, prompt=prompt.kind,
                        prompt_sha256=prompt_sha, corpus_sha256=wiki.sha256,
                        chat_template_sha256=run.chat_template_sha256) for e in run.episodes]
    table = pa.Table.from_pylist(rows, schema=EPISODE_SCHEMA)
    provenance = make_provenance(step, output.config, inputs)
    provenance.update(prompt_sha256=prompt_sha, corpus_sha256=wiki.sha256, format=prompt.format,
                      chat_template_sha256=run.chat_template_sha256, **wiki.provenance(), **extra)
    write_parquet(table, output.path, provenance)
    return table


def evaluate_model(model: ModelRef, questions: QuestionSample, wiki_files: WikiFiles, prompt: Prompt,
                   agent: AgentConfig, output: Output) -> pa.Table:
    """Run ``model`` as the agent over the question sample and write its episodes to ``output``."""
    tasks = questions.tasks()
    wiki = wiki_files.open()
    log.info("model %s (%s, backend %s, %s prompt, %s format): %d questions from %s", model.name, model.location,
             model.backend, prompt.kind, prompt.format, len(tasks), questions.split)
    started = time.perf_counter()
    try:
        run = run_model(model, tasks, wiki, prompt, agent)
    finally:
        wiki.close()
    table = write_episodes(
        run, output, step="evaluate", model=model.name, backend=model.backend, agent=agent, prompt=prompt,
        wiki=wiki, inputs=run_inputs(questions, wiki_files, prompt, model),
        extra={"model": model.name, "model_location": model.location},
    )
    em = sum(table.column("em").to_pylist())
    log.info("wrote %s: EM %d/%d = %.1f%% in %.0f s", output.path, em, table.num_rows,
             100 * em / max(1, table.num_rows), time.perf_counter() - started)
    return table
