"""`python -m react show / compare / ask / diff`: reading results from the command line."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pyarrow as pa
import pytest
import yaml

from react.agent.loop import AgentConfig, Task, episode_row, run_agent
from react.cli import main
from react.environment.offline import WikiEnv
from react.io import write_parquet
from react.schemas import EPISODE_SCHEMA
from react.search.index import Corpus

PAGES = {"Milhouse": ["Milhouse is a character.", " Milhouse was named after Richard Nixon."]}
TASKS = [Task("q1", "Who was Milhouse named after?", "Richard Nixon", "dev", 7),
         Task("q2", "Is Milhouse a character?", "yes", "dev", 8)]


def write_eval(path, model, answers, scripted):
    """An eval file whose model answers each task with the given answer after one search."""
    corpus = Corpus.from_paragraphs(PAGES)
    by_question = dict(zip([t.question for t in TASKS], answers, strict=True))

    def script(prompt, stop):
        question = next(q for q in by_question if q in prompt)
        if "Action 1:" not in prompt:
            return " I search.\nAction 1: Search[Milhouse]"
        return f" So the answer is {by_question[question]}.\nAction 2: Finish[{by_question[question]}]"

    episodes = run_agent(TASKS, scripted(script), lambda protocol: WikiEnv(corpus, protocol), "P\n", AgentConfig())
    rows = [episode_row(e, model=model, backend="scripted", config=AgentConfig(), prompt_sha256="p",
                        corpus_sha256="c") for e in episodes]
    write_parquet(pa.Table.from_pylist(rows, schema=EPISODE_SCHEMA), path, {"step": "evaluate"})


@pytest.fixture
def results(tmp_path, scripted, monkeypatch):
    (tmp_path / "results/eval").mkdir(parents=True)
    write_eval(tmp_path / "results/eval/base.parquet", "base", ["Nixon", "yes"], scripted)
    write_eval(tmp_path / "results/eval/tuned.parquet", "tuned", ["Richard Nixon", "no"], scripted)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(*argv):
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def test_show_lists_questions_with_their_outcome(results):
    code, out = run("show", "base")
    assert code == 0
    assert out.splitlines()[0] == "base: 2 questions, EM 1/2 = 50.0%"
    assert "q1" in out and "wrong" in out and "right" in out
    code, out = run("show", "base", "--wrong")
    assert "q1" in out and "q2 " not in out


def test_show_prints_one_trajectory_step_by_step(results):
    code, out = run("show", "results/eval/tuned.parquet", "--id", "q1")
    assert code == 0
    assert "Question: Who was Milhouse named after?" in out
    assert "Predicted: Richard Nixon   -> RIGHT" in out
    assert "Action 1: Search[Milhouse]" in out
    assert "Observation 2: Episode finished, reward = 1" in out
    assert run("show", "tuned", "--id", "8")[1].count("Question: Is Milhouse a character?") == 1  # by index


def test_compare_lists_fixed_and_broken_questions_and_shows_both(results):
    code, out = run("compare", "base", "tuned")
    assert code == 0
    assert out.splitlines()[0].startswith("2 questions answered by both: base right on 1, tuned right on 1")
    fixed, broken = out.split("tuned right, base wrong (1):")[1].split("base right, tuned wrong (1):")
    assert "q1" in fixed and "q2" in broken
    assert "python -m react compare base tuned --id q1" in out
    code, out = run("compare", "base", "tuned", "--id", "q1")
    assert out.count("Question: Who was Milhouse named after?") == 2
    assert "Predicted: Nixon   -> WRONG" in out and "Predicted: Richard Nixon   -> RIGHT" in out


def test_unknown_model_and_question_are_named(results, capsys):
    assert run("show", "gpt-5")[0] == 2
    assert "no results for 'gpt-5': results/eval/gpt-5.parquet does not exist (evaluated models: base, tuned)" in (
        capsys.readouterr().err)
    assert run("show", "base", "--id", "nope")[0] == 2
    assert "base: no question with id or index 'nope'" in capsys.readouterr().err


def test_module_entry_point_runs(results):
    result = subprocess.run([sys.executable, "-m", "react", "show", "base"], capture_output=True, text=True,
                            cwd=results, env={**os.environ, "PYTHONPATH": str(results.parent)})
    assert result.returncode == 0 and "EM 1/2" in result.stdout


@pytest.mark.slow
def test_ask_runs_one_question_live_printing_each_step(project_dir, tiny_model, tmp_path, monkeypatch):
    from test_workflow import snakemake, tiny_config

    config = tiny_config(tiny_model)
    made = snakemake(project_dir, tmp_path, config, target="results/data/wiki/distractor.bm25s")
    assert made.returncode == 0, made.stderr[-3000:]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.chdir(tmp_path)
    code, out = run("ask", "--model", "tiny", "--config", "config.yaml", "--answer", "yes",
                    "Were Scott Derrickson and Ed Wood of the same nationality?")
    assert code == 0, out
    assert "tiny (transformers, few-shot prompt) on distractor" in out
    assert "Thought 1:" in out and "Observation 1:" in out
    assert out.rstrip().splitlines()[-1].startswith("Answer: ")
    code, _ = run("ask", "--model", "nope", "--config", "config.yaml", "q?")
    assert code == 2
