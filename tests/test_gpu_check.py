"""benchmarks/gpu_check.py on a CPU with the tiny model: its output, and the paths taken when packages are missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SMALL = ["--device", "cpu", "--n-questions", "2", "--max-steps", "2", "--max-new-tokens", "8", "--batch-size", "2",
         "--train-steps", "2"]


def run_check(project_dir, tiny_model, out, *extra):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("OUT", None)
    result = subprocess.run([sys.executable, str(project_dir / "benchmarks/gpu_check.py"), "--model", str(tiny_model),
                             "--out", str(out), *SMALL, *extra],
                            capture_output=True, text=True, env=env, timeout=900, cwd=project_dir)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads((out / "gpu_check.json").read_text())


def check_agent_section(agent):
    assert agent["device"] == "cpu" and agent["n_questions"] == 2
    assert set(agent["runs"]) == {"batched", "sequential"}
    assert agent["runs"]["batched"]["generate_calls"] < agent["runs"]["sequential"]["generate_calls"]
    assert agent["ratio_wall_sequential_over_batched"] > 0
    # Reported, not asserted equal: a padded batch may round a near-tie of the random model the other way.
    assert agent["n"] == 2 and 0 <= agent["same_prediction"] <= 2 and 0 <= agent["same_trajectory"] <= 2


@pytest.mark.slow
def test_missing_packages_are_replaced_and_named(project_dir, tiny_model, tmp_path):
    report = run_check(project_dir, tiny_model, tmp_path, "--hide", "trl,datasets,bm25s,bitsandbytes")
    check_agent_section(report["agent"])
    assert report["agent"]["environment"].startswith("stand-in")
    lora = report["lora"]
    assert lora["trainer"].startswith("plain torch/peft loop") and lora["steps"] == 2 and lora["median_step_s"] > 0
    assert lora["peak_rss_gib"] > 0
    assert "qlora" not in report
    notes = "\n".join(report["notes"])
    for name in ("trl", "bm25s", "bitsandbytes"):
        assert f"{name} does not import" in notes
    assert "qlora: skipped" in notes and "stand-in environment" in notes
    assert report["versions"]["trl"] == "hidden"


@pytest.mark.slow
def test_with_everything_installed_it_uses_the_projects_code(project_dir, tiny_model, tmp_path):
    pytest.importorskip("trl")
    pytest.importorskip("bm25s")
    report = run_check(project_dir, tiny_model, tmp_path, "--skip", "qlora")
    check_agent_section(report["agent"])
    assert report["agent"]["environment"].startswith("react.environment.offline.WikiEnv")
    assert report["lora"]["trainer"].startswith("react.training.trainer.make_trainer") and report["lora"]["steps"] == 2
    assert "qlora: skipped (--skip)" in report["notes"]
