"""Threads = CPUs the job may use: Snakemake's figure capped by affinity, cgroup quota and SLURM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from react import threads as rt
from react.threads import (
    THREAD_ENV_VARS,
    apply_threads,
    cgroup_cpu_quota,
    choose_threads,
    job_threads,
    limit_job_threads,
    slurm_cpus,
)


@pytest.mark.parametrize(("given", "affinity", "quota", "slurm", "expected"), [
    (8, 2, None, None, 2),  # --cores 8 on a 2-CPU machine
    (2, 16, None, None, 2),  # Snakemake's figure when the machine is bigger
    (8, 16, 4.0, None, 4),  # a container with a 4-CPU quota on a 16-CPU host
    (8, 16, 2.5, None, 2),  # a fractional quota rounds down: a thread more would be throttled
    (8, 16, 0.5, None, 1),  # never fewer than one
    (32, 64, None, 6, 6),  # a SLURM allocation on a big node
    (None, 3, None, None, 3),  # no figure given: what the process may use
])
def test_the_smallest_figure_wins(given, affinity, quota, slurm, expected):
    assert choose_threads(given, affinity, quota, slurm).threads == expected


def test_the_log_line_says_the_figure_and_why():
    assert choose_threads(8, 2).describe() == "threads: 2 (snakemake gave 8; affinity 2 CPUs; cgroup quota none)"
    assert choose_threads(8, 16, 2.5, 4).describe() == (
        "threads: 2 (snakemake gave 8; affinity 16 CPUs; cgroup quota 2.5 CPUs; SLURM allocation 4 CPUs)")
    off = choose_threads(8, 2, limited=False)
    assert off.threads == 8 and off.describe().endswith("REACT_CPU_LIMIT=off: not limited)")


def fake_proc(tmp_path: Path, cgroup: str, mounts: list[tuple[str, str, str, str]]) -> Path:
    """A /proc/self with `cgroup` and a mountinfo of (root, mount point, fstype, super options)."""
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "cgroup").write_text(cgroup)
    lines = [f"{30 + i} 25 0:{30 + i} {root} {point} rw,nosuid - {fstype} cgroup {options}"
             for i, (root, point, fstype, options) in enumerate(mounts)]
    lines.insert(0, "25 1 0:22 / / rw,relatime - overlay overlay rw")
    (proc / "mountinfo").write_text("\n".join(lines) + "\n")
    return proc


def test_cgroup_v2_quota_of_the_process_and_its_ancestors(tmp_path):
    root = tmp_path / "cg2"
    job = root / "slice" / "job"
    job.mkdir(parents=True)
    (root / "cpu.max").write_text("max 100000\n")
    (job / "cpu.max").write_text("max 100000\n")
    proc = fake_proc(tmp_path, "0::/slice/job\n", [("/", str(root), "cgroup2", "rw")])
    assert cgroup_cpu_quota(proc) is None
    (root / "slice" / "cpu.max").write_text("150000 100000\n")  # the parent's is tighter
    (job / "cpu.max").write_text("400000 100000\n")
    assert cgroup_cpu_quota(proc) == 1.5


def test_cgroup_v2_inside_a_namespace(tmp_path):
    root = tmp_path / "cg2"
    root.mkdir()
    (root / "cpu.max").write_text("200000 100000\n")
    proc = fake_proc(tmp_path, "0::/\n", [("/", str(root), "cgroup2", "rw")])
    assert cgroup_cpu_quota(proc) == 2.0


def test_cgroup_v1_on_a_hybrid_host(tmp_path):
    cpu = tmp_path / "cpu,cpuacct"
    (cpu / "docker" / "abc").mkdir(parents=True)
    (cpu / "docker" / "abc" / "cpu.cfs_quota_us").write_text("300000\n")
    (cpu / "docker" / "abc" / "cpu.cfs_period_us").write_text("100000\n")
    (cpu / "cpu.cfs_quota_us").write_text("-1\n")
    (cpu / "cpu.cfs_period_us").write_text("100000\n")
    unified = tmp_path / "unified"
    unified.mkdir()  # v2 without the cpu controller: no cpu.max
    proc = fake_proc(tmp_path, "4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n0::/docker/abc\n",
                     [("/", str(cpu), "cgroup", "rw,cpu,cpuacct"), ("/", str(unified), "cgroup2", "rw"),
                      ("/", str(tmp_path / "memory"), "cgroup", "rw,memory")])
    assert cgroup_cpu_quota(proc) == 3.0


def test_no_cgroup_files_means_no_quota(tmp_path):
    assert cgroup_cpu_quota(tmp_path / "missing") is None
    proc = fake_proc(tmp_path, "0::/x\n", [("/", str(tmp_path / "gone"), "cgroup2", "rw")])
    assert cgroup_cpu_quota(proc) is None


def test_slurm_allocation_not_the_node():
    assert slurm_cpus({}) is None
    assert slurm_cpus({"SLURM_CPUS_PER_TASK": "4"}) is None  # a leftover variable outside a job
    assert slurm_cpus({"SLURM_JOB_ID": "7", "SLURM_CPUS_PER_TASK": "4", "SLURM_CPUS_ON_NODE": "8"}) == 4
    assert slurm_cpus({"SLURM_JOB_ID": "7", "SLURM_CPUS_ON_NODE": "8"}) == 8


def test_job_threads_reads_the_process_limits(monkeypatch, tmp_path):
    monkeypatch.setattr(rt, "affinity_cpus", lambda: 6)
    no_cgroup = tmp_path / "none"
    assert job_threads(8, {}, no_cgroup).threads == 6
    assert job_threads(8, {"SLURM_JOB_ID": "1", "SLURM_CPUS_PER_TASK": "3"}, no_cgroup).threads == 3
    assert job_threads(8, {"REACT_CPU_LIMIT": "off"}, no_cgroup).threads == 8


def test_snakemakes_environment_does_not_win(monkeypatch, tmp_path):
    import torch

    monkeypatch.setattr(rt, "affinity_cpus", lambda: 1)
    environ = {name: "8" for name in THREAD_ENV_VARS[:6]}  # what Snakemake exports for threads: 8
    job = SimpleNamespace(threads=8)
    before = torch.get_num_threads()
    try:
        choice = limit_job_threads(job, environ, tmp_path / "none")
        assert choice.threads == 1 and job.threads == 1
        assert {name: environ.get(name) for name in THREAD_ENV_VARS if name != "NUMBA_NUM_THREADS"} == {
            name: "1" for name in THREAD_ENV_VARS if name != "NUMBA_NUM_THREADS"}
        assert environ["TOKENIZERS_PARALLELISM"] == "false"
        assert torch.get_num_threads() == 1  # already loaded: told directly
        # A second call (the script's _project, then logged()) keeps Snakemake's figure in the log.
        assert limit_job_threads(job, environ, tmp_path / "none").given == 8
    finally:
        torch.set_num_threads(before)


def test_numba_already_loaded_keeps_its_variable():
    """numba re-reads NUMBA_NUM_THREADS and raises if it changed after its pool started."""
    pytest.importorskip("numba")
    environ = {}
    apply_threads(1, environ)
    assert "NUMBA_NUM_THREADS" not in environ and environ["OMP_NUM_THREADS"] == "1"


def test_a_job_log_names_its_threads_and_torch_uses_them(tmp_path, project_dir):
    """In a fresh process as Snakemake starts a script: OMP_NUM_THREADS=8 exported, torch imported later."""
    log = tmp_path / "job.log"
    code = textwrap.dedent(f"""
        import json, sys
        from types import SimpleNamespace
        from react.pipeline.jobs import logged
        snakemake = SimpleNamespace(log=[{str(log)!r}], rule="finetune", threads=8)
        with logged(snakemake):
            import torch
            print(json.dumps({{"torch": torch.get_num_threads(), "threads": snakemake.threads}}))
    """)
    env = {**os.environ, **{name: "8" for name in THREAD_ENV_VARS[:6]}}
    env.pop("REACT_CPU_LIMIT", None)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    expected = job_threads(8).threads
    text = log.read_text()
    assert f"threads: {expected} (snakemake gave 8; affinity " in text
    seen = json.loads(next(line for line in text.splitlines() if line.startswith("{")))
    assert seen == {"torch": expected, "threads": expected}


def test_scripts_limit_threads_before_numpy_loads(tmp_path, project_dir):
    """react.pipeline.jobs.start, which every script calls first, sets the variables OpenBLAS reads when numpy loads."""
    for script in (project_dir / "workflow/scripts").glob("*.py"):
        text = script.read_text()
        first_code = [line.strip() for line in text.split('"""', 2)[2].lstrip().splitlines()[:4]]
        assert first_code[0].startswith("from react.pipeline.jobs import"), script
        assert first_code[2].startswith("start(") or first_code[3].startswith("start("), script
    code = textwrap.dedent(f"""
        import json, os, sys
        from types import SimpleNamespace
        snakemake = SimpleNamespace(threads=64, log=[], rule="x",  # as Snakemake's preamble defines it
                                    scriptdir={str(project_dir / "workflow/scripts")!r})
        from react.pipeline.jobs import start
        start(snakemake)
        print(json.dumps({{"numpy": "numpy" in sys.modules, "threads": snakemake.threads,
                          "env": {{k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}}}}))
    """)
    env = {**os.environ, **{name: "64" for name in THREAD_ENV_VARS[:6]}}
    env.pop("REACT_CPU_LIMIT", None)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    expected = str(job_threads(64).threads)
    assert json.loads(result.stdout) == {"numpy": False, "threads": int(expected),
                                         "env": {"OMP_NUM_THREADS": expected, "OPENBLAS_NUM_THREADS": expected}}
