"""How many threads a job may use, and making every library in the process keep to it.

Snakemake gives a rule ``threads`` out of ``--cores``, which people type without
knowing how many CPUs a job will really get (``--cores 8`` on a 2-CPU laptop,
``--cores all`` on a shared node), and it exports ``OMP_NUM_THREADS`` (and MKL,
OpenBLAS, ...) equal to that figure. Torch, OpenBLAS, tokenizers and vLLM then start
that many busy threads; more threads than CPUs only thrash (BENCHMARKS.md 7). A job
uses at most the smallest of:

* the threads Snakemake gave it;
* the CPUs in the process's affinity mask (``taskset``, cpusets, SLURM's task binding);
* the cgroup CPU quota (cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` /
  ``cpu.cfs_period_us``, of the process's cgroup and its ancestors), rounded down:
  a thread more than the quota allows is throttled in every period, which stalls the
  others at each OpenMP barrier (the rule Go's automaxprocs and vLLM follow);
* on SLURM, the allocation (``SLURM_CPUS_PER_TASK``, else ``SLURM_CPUS_ON_NODE``),
  not the node.

:func:`limit_job_threads` puts the figure into the environment (before torch, numba or
vLLM's engine process read it) and into the libraries already loaded.
``REACT_CPU_LIMIT=off`` keeps Snakemake's figure, to measure what the limit is worth.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Read by OpenMP (torch's intra-op pool; vLLM's CPU engine sets its own from the bind
# list), MKL, OpenBLAS/GotoBLAS, Apple Accelerate, numexpr, BLIS, rayon (Hugging Face
# tokenizers) and numba, each when it loads. Snakemake sets the first six for scripts.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS",
                   "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "BLIS_NUM_THREADS", "RAYON_NUM_THREADS",
                   "NUMBA_NUM_THREADS")
SWITCH = "REACT_CPU_LIMIT"


@dataclass(frozen=True)
class ThreadChoice:
    threads: int  # what the job uses
    given: int | None  # what the workflow asked for (Snakemake's `threads`)
    affinity: int  # CPUs in the affinity mask
    quota: float | None  # cgroup CPU quota in CPUs, None: no quota
    slurm: int | None  # CPUs of the SLURM allocation, None: not in a SLURM job
    limited: bool = True  # False: REACT_CPU_LIMIT=off kept the given figure

    def describe(self) -> str:
        """The log line: the figure and why, e.g. ``threads: 2 (snakemake gave 8; affinity 2 CPUs; ...)``."""
        parts = [f"snakemake gave {self.given}" if self.given else "no figure given",
                 f"affinity {self.affinity} CPUs",
                 f"cgroup quota {self.quota:g} CPUs" if self.quota is not None else "cgroup quota none"]
        if self.slurm is not None:
            parts.append(f"SLURM allocation {self.slurm} CPUs")
        if not self.limited:
            parts.append(f"{SWITCH}=off: not limited")
        return f"threads: {self.threads} ({'; '.join(parts)})"


def choose_threads(given: int | None, affinity: int, quota: float | None = None, slurm: int | None = None,
                   limited: bool = True) -> ThreadChoice:
    """The smallest of the figures that are set; at least 1."""
    if not limited and given:
        return ThreadChoice(given, given, affinity, quota, slurm, limited=False)
    bounds = [given or None, affinity, math.floor(quota) if quota is not None else None, slurm]
    threads = max(1, min(b for b in bounds if b is not None))
    return ThreadChoice(threads, given or None, affinity, quota, slurm)


def affinity_cpu_ids() -> list[int]:
    """The CPUs in the process's affinity mask (what an engine binds its threads to)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def affinity_cpus() -> int:
    return len(affinity_cpu_ids())


def slurm_cpus(environ: MutableMapping[str, str] | None = None) -> int | None:
    """CPUs of this SLURM job step's allocation on this node, None outside SLURM."""
    environ = os.environ if environ is None else environ
    if not environ.get("SLURM_JOB_ID"):
        return None
    for key in ("SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE"):
        value = environ.get(key, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


def _unescape(field: str) -> str:
    """Mount paths in mountinfo escape space, tab, newline and backslash as octal."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _v2_quota(directory: Path) -> float | None:
    text = _read(directory / "cpu.max")
    if not text:
        return None
    try:
        quota, period = text.split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except ValueError:
        return None


def _v1_quota(directory: Path) -> float | None:
    quota, period = _read(directory / "cpu.cfs_quota_us"), _read(directory / "cpu.cfs_period_us")
    try:
        q, p = int(quota or ""), int(period or "")
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def cgroup_cpu_quota(proc: str | Path = "/proc/self") -> float | None:
    """The tightest CPU quota of the process's cgroup and its ancestors, in CPUs; None if there is none.

    The hierarchies are found from ``proc/mountinfo`` (cgroup v2, or v1's ``cpu``
    controller, wherever mounted: hybrid hosts have both) and ``proc/cgroup``.
    """
    proc = Path(proc)
    mountinfo, cgroups = _read(proc / "mountinfo"), _read(proc / "cgroup")
    if not mountinfo or not cgroups:
        return None
    paths: dict[str, str] = {}  # "" (v2) or a v1 controller -> the process's cgroup path
    for line in cgroups.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(",") if parts[1] else [""]:
                paths[controller] = parts[2]
    found: list[float] = []
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 3:
            continue
        root, mount_point, fstype, options = _unescape(fields[3]), Path(_unescape(fields[4])), tail[0], tail[2]
        if fstype == "cgroup2" and "" in paths:
            own, read = paths[""], _v2_quota
        elif fstype == "cgroup" and "cpu" in options.split(",") and "cpu" in paths:
            own, read = paths["cpu"], _v1_quota
        else:
            continue
        # Inside a cgroup namespace the mount's root is the process's own cgroup (path "/").
        relative = os.path.relpath(own, root) if own.startswith(root) else "."
        directory = Path(os.path.normpath(mount_point / relative))
        while True:
            quota = read(directory)
            if quota is not None:
                found.append(quota)
            if directory == mount_point or mount_point not in directory.parents:
                break
            directory = directory.parent
    return min(found) if found else None


def job_threads(given: int | None, environ: MutableMapping[str, str] | None = None,
                proc: str | Path = "/proc/self") -> ThreadChoice:
    """The figure for a job Snakemake gave ``given`` threads, from this process's limits."""
    environ = os.environ if environ is None else environ
    limited = environ.get(SWITCH, "").lower() not in ("off", "0", "false", "no")
    return choose_threads(given, affinity_cpus(), cgroup_cpu_quota(proc), slurm_cpus(environ), limited)


def apply_threads(threads: int, environ: MutableMapping[str, str] | None = None) -> None:
    """Make the libraries of this process, and the processes it starts, use ``threads`` threads.

    Environment variables are read by each library when it loads; torch and pyarrow's
    pool, if already loaded, are told directly. numba is left as it loaded: it re-reads its
    config and refuses a changed NUMBA_NUM_THREADS once its pool runs, and starting the pool
    to resize it would reset OpenMP's thread count under torch (its `omp` layer shares
    libgomp). Scripts set the variables before anything loads (workflow/scripts/_project.py).
    """
    environ = os.environ if environ is None else environ
    for name in THREAD_ENV_VARS:
        if not (name == "NUMBA_NUM_THREADS" and "numba" in sys.modules):
            environ[name] = str(threads)
    if threads == 1:
        environ["TOKENIZERS_PARALLELISM"] = "false"
    if "torch" in sys.modules:
        limit_torch(threads)
    if "pyarrow" in sys.modules:
        sys.modules["pyarrow"].set_cpu_count(threads)


def limit_torch(threads: int) -> None:
    """torch's intra-op pool, and its inter-op pool while it is not yet started."""
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # already set, or inter-op work has started: it keeps its size
        pass


def limit_job_threads(snakemake: Any, environ: MutableMapping[str, str] | None = None,
                      proc: str | Path = "/proc/self") -> ThreadChoice:
    """Choose the job's threads, apply them, and make ``snakemake.threads`` say the figure chosen.

    Everything downstream (model backends, the trainer, vLLM's CPU binding) reads
    ``snakemake.threads``; after this it is the figure the job may really use.
    Calling it again is harmless: the Snakemake figure is remembered on the object.
    """
    given = getattr(snakemake, "_react_threads_given", None) or getattr(snakemake, "threads", None)
    choice = job_threads(int(given) if given else None, environ, proc)
    apply_threads(choice.threads, environ)
    try:
        snakemake._react_threads_given = choice.given
        snakemake.threads = choice.threads
    except AttributeError:  # a read-only stand-in: the caller reads choice.threads
        pass
    return choice
