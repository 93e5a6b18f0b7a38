"""A run killed (SIGKILL) while teacher shards are being written resumes to the same table."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from test_workflow import SNAKEMAKE, finetune_config, snakemake

from react.io import read_parquet
from react.schemas import EPISODE_SCHEMA

N_SHARDS = 4
SHARDS = [f"results/trajectories/oracle/train/shard-{i}-of-{N_SHARDS}.parquet" for i in range(1, N_SHARDS + 1)]


def config_with_shards(tiny_model):
    config = finetune_config(tiny_model)
    config["teachers"]["oracle"].update(n_questions=200, shards=N_SHARDS)
    return config


def kill_while_writing_shards(project_dir: Path, workdir: Path, config: dict, limit: float = 300) -> list[str]:
    """Start the workflow and SIGKILL it (and its jobs) once a shard is done and the next is running."""
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.Popen(
        [*SNAKEMAKE, "results/table.csv", "-s", str(project_dir / "workflow/Snakefile"), "-d", str(workdir),
         "--cores", "1", "--configfile", str(workdir / "config.yaml")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    deadline = time.monotonic() + limit
    try:
        while time.monotonic() < deadline:
            done = [s for s in SHARDS if (workdir / s).exists()]
            running = [s for s in SHARDS if not (workdir / s).exists()
                       and (workdir / s.replace("results/trajectories", "results/logs/generate")
                            .replace(".parquet", ".log")).exists()]
            if done and running:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
                return done
            if proc.poll() is not None:
                pytest.fail(f"the workflow ended (rc {proc.returncode}) before it could be killed mid-shards")
            time.sleep(0.05)
        pytest.fail("no shard finished in time")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


@pytest.mark.slow
def test_killed_run_resumes_to_the_table_of_an_uninterrupted_run(project_dir, tiny_model, tmp_path):
    config = config_with_shards(tiny_model)
    reference = tmp_path / "uninterrupted"
    reference.mkdir()
    result = snakemake(project_dir, reference, config)
    assert result.returncode == 0, result.stderr[-3000:]

    crashed = tmp_path / "crashed"
    crashed.mkdir()
    done_before = kill_while_writing_shards(project_dir, crashed, config)
    # Whatever sits under a final name is complete: every shard there reads back whole.
    for shard in SHARDS:
        if (crashed / shard).exists():
            assert read_parquet(crashed / shard, EPISODE_SCHEMA).num_rows == 50
    assert not (crashed / "results/table.csv").exists()
    mtimes = {s: (crashed / s).stat().st_mtime_ns for s in done_before}

    # What a user does after a crash: release snakemake's lock, run the same command again.
    unlock = snakemake(project_dir, crashed, config, "--unlock")
    assert unlock.returncode == 0, unlock.stderr[-3000:]
    resumed = snakemake(project_dir, crashed, config)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    assert {s: (crashed / s).stat().st_mtime_ns for s in done_before} == mtimes  # finished shards kept
    assert (crashed / "results/table.csv").read_bytes() == (reference / "results/table.csv").read_bytes()
    for model in ("tiny", "tiny-react"):
        a = read_parquet(reference / f"results/eval/{model}.parquet", EPISODE_SCHEMA).drop(["seconds"])
        b = read_parquet(crashed / f"results/eval/{model}.parquet", EPISODE_SCHEMA).drop(["seconds"])
        assert a.equals(b), model
    # Temporary files are hidden siblings (.<name>.<random>.tmp): a kill can leave one behind,
    # never a partial file under a final name.
    for path in (crashed / "results").rglob("*.parquet"):
        if not path.name.startswith("."):
            read_parquet(path)
