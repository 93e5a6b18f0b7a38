"""Runs against the live Wikipedia (a local stand-in): rows and provenance trace the pages served,
and a rerun from the cache alone, offline, gives the same rows."""

from __future__ import annotations

import csv
import re

import pytest
from test_wiki_live import recorded_wikipedia
from test_workflow import snakemake, tiny_config

from react.agent.loop import AgentConfig, Task, run_agent
from react.config.settings import schema_defaults
from react.environment.wikis import open_wiki, wiki_settings
from react.io import read_parquet, read_provenance
from react.pipeline.evaluate import Output, Prompt, Run, write_episodes
from react.schemas import EPISODE_SCHEMA


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def wikipedia():
    server = recorded_wikipedia()
    yield server
    server.stop()


def colorado_script(prompt, stop):
    """A model that searches, looks up, then answers."""
    step = int(re.findall(r"Thought (\d+):", prompt)[-1])
    action = {1: "Search[Colorado orogeny]", 2: "Lookup[eastern sector]"}.get(step, "Finish[High Plains]")
    return f" Step {step}.\nAction {step}: {action}\nObservation {step}: made up"


def live(spec):
    """The typed settings of a `live` corpus entry, the schema's defaults filled."""
    return wiki_settings("wikipedia", schema_defaults("corpus", {"wikipedia": spec})["wikipedia"])


def run(spec, tmp_path, scripted, name):
    wiki = open_wiki("wikipedia", live(spec))
    tasks = [Task("q1", "Which area does the eastern sector of the Colorado orogeny extend into?",
                  "High Plains", "dev", 0)]
    try:
        episodes = run_agent(tasks, scripted(colorado_script), wiki.new_env, "Prompt\n", AgentConfig())
    finally:
        wiki.close()
    out = tmp_path / f"{name}.parquet"
    write_episodes(Run(episodes, None), Output(out, {}), step="evaluate", model="scripted", backend="scripted",
                   agent=AgentConfig(), prompt=Prompt("Prompt\n", "few-shot", ()), wiki=wiki, inputs={}, extra={})
    return read_parquet(out, EPISODE_SCHEMA), read_provenance(out)


def test_rows_trace_the_pages_and_replay_offline(wikipedia, tmp_path, scripted):
    spec = {"live": {"url": wikipedia.base_url, "cache": str(tmp_path / "cache"), "offline": False,
                     "timeout_s": 5, "max_retries": 1}}
    table, provenance = run(spec, tmp_path, scripted, "online")
    steps = table.column("steps")[0].as_py()
    assert steps[0]["observation"].startswith("The Colorado orogeny was an episode of mountain building")
    assert steps[1]["observation"].startswith("(Result 1 / 1) The eastern sector extends into the High Plains")
    assert table.column("em").to_pylist() == [True]
    assert provenance["wiki"] == "live" and provenance["live"]["base_url"] == wikipedia.base_url
    assert [p["url"] for p in provenance["pages"]] == [f"{wikipedia.base_url}/w/index.php?search=Colorado+orogeny"]
    assert table.column("corpus_sha256")[0].as_py() == provenance["corpus_sha256"]
    n_requests = len(wikipedia.requests)

    wikipedia.stop()  # the rerun must not need the server
    spec["live"]["offline"] = True
    replay, replay_provenance = run(spec, tmp_path, scripted, "offline")
    assert len(wikipedia.requests) == n_requests
    assert replay.drop(["seconds"]).equals(table.drop(["seconds"]))
    assert replay_provenance["pages"] == provenance["pages"]


def test_workflow_on_the_live_wikipedia_builds_no_corpus(wikipedia, project_dir, tiny_model, tmp_path):
    config = tiny_config(tiny_model)
    config["corpus"] = {"wikipedia": {"live": {"url": wikipedia.base_url, "timeout_s": 5, "max_retries": 1}}}
    config["evaluation"]["corpus"] = "wikipedia"
    result = snakemake(project_dir, tmp_path, config)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (tmp_path / "results/data/wiki").exists()
    provenance = read_provenance(tmp_path / "results/eval/tiny.parquet")
    assert provenance["wiki"] == "live" and set(provenance["inputs"]) == {"split", "prompt", "prompt.1", "model"}
    rows = [r for r in csv.DictReader((tmp_path / "results/table.csv").open()) if r["kind"] == "measured"]
    assert [r["model"] for r in rows] == ["tiny"]


def test_live_wikipedia_that_is_down_fails_the_job_naming_the_url(project_dir, tiny_model, tmp_path, scripted):
    spec = {"live": {"url": "http://127.0.0.1:9", "cache": str(tmp_path / "cache"), "timeout_s": 1,
                     "max_retries": 0}}
    wiki = open_wiki("wikipedia", live(spec))
    env = wiki.new_env()
    with pytest.raises(Exception, match=r"http://127\.0\.0\.1:9/w/index\.php\?search=Colorado\+orogeny"):
        env.step("search[Colorado orogeny]")
