"""Threads: the same finetune as a Snakemake job with `--cores 8` and `--cores 2`, per-step time ratio.

Issue 12: on a 2-CPU machine `snakemake --cores 8` gave the finetune job 8 threads and
torch started 8 OpenMP workers (1.2x slower per step than 2). With react/threads.py the
job uses at most the CPUs it may use, so `--cores 8` should cost no more than `--cores 2`
(target: within 10%). ``--unlimited`` adds a run with ``REACT_CPU_LIMIT=off`` (Snakemake's
figure kept: the behaviour before the limit) to measure what the limit is worth.

Each run is the default config's finetune (``smollm2-135m-react``: LoRA, preset ``cpu``) cut
to ``--steps`` optimizer steps, run by ``snakemake --allowed-rules finetune`` in a scratch
folder that holds the model and dataset given (build them first, e.g.
``snakemake --cores 2 results/models/smollm2-135m results/datasets/oracle-train.jsonl``).
Per-step times come from the job log's step lines (``logging_steps: 1``); the first step
(allocation, first-call costs) is left out of the median.

    .venv/bin/python benchmarks/threads.py --steps 5
    .venv/bin/python benchmarks/threads.py --steps 5 --unlimited --order 8,2,8off

Results: benchmarks/results/threads-<date>.json, with the CPU, its count and the 1-minute
load average before and during each run (other people's jobs on a shared machine show
up there; the runs alternate so that drift hits all of them).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from agent_speed import LoadSampler, busy_processes, machine  # noqa: E402

RUN = "smollm2-135m-react"
STEP_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO react\.training\.callbacks: (step (\d+)/\d+|training: )")
THREADS_LINE = re.compile(r"react\.threads: (threads: .*)$", re.M)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="results/models/smollm2-135m")
    p.add_argument("--dataset", default="results/datasets/oracle-train.jsonl")
    p.add_argument("--config", default="config/config.yaml", help="the finetune run and its dataset come from here")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--order", default="8,2", help="runs in this order: N = --cores N, Noff = --cores N with "
                                                  "REACT_CPU_LIMIT=off (default: %(default)s)")
    p.add_argument("--unlimited", action="store_true", help="append 8off to --order (the behaviour before the limit)")
    p.add_argument("--repeat", type=int, default=1, help="go through --order this many times")
    p.add_argument("--max-load", type=float, default=1.5,
                   help="before each run, wait for the 1-minute load average to drop below this")
    p.add_argument("--wait-max", type=float, default=600, help="seconds to wait for it at most")
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/results/threads-<date>.json)")
    return p.parse_args(argv)


def write_config(args: argparse.Namespace, workdir: Path) -> Path:
    config = yaml.safe_load((PROJECT / args.config).read_text())
    run = config["finetune"][RUN]
    base = run["base"]
    config["models"] = {base: {"path": str(Path(args.model).resolve()), "backend": "transformers"}}
    config["evaluation"]["models"] = [base]
    run["hyperparameters"] = {**run.get("hyperparameters", {}), "max_steps": args.steps, "save_steps": args.steps,
                              "logging_steps": 1}
    dataset = workdir / "results/datasets" / f"{run['dataset']}.jsonl"
    dataset.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.dataset, dataset)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def step_times(log: str) -> list[float]:
    """Seconds per optimizer step from the timestamps of the trainer's lines (the first: its start)."""
    stamps = [dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f")
              for m in map(STEP_LINE.match, log.splitlines()) if m]
    return [(b - a).total_seconds() for a, b in zip(stamps, stamps[1:])]


def run_once(args: argparse.Namespace, label: str, scratch: Path) -> dict:
    cores, off = int(label.removesuffix("off")), label.endswith("off")
    workdir = scratch / f"run-{label}-{time.monotonic_ns()}"
    workdir.mkdir()
    config = write_config(args, workdir)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("REACT_CPU_LIMIT", None)
    if off:
        env["REACT_CPU_LIMIT"] = "off"
    cmd = [sys.executable, "-m", "snakemake", f"results/finetune/{RUN}/loss.parquet", "-s", str(PROJECT / "workflow/Snakefile"),
           "-d", str(workdir), "--configfile", str(config), "--cores", str(cores), "--allowed-rules", "finetune"]
    waited = time.monotonic()
    while os.getloadavg()[0] >= args.max_load and time.monotonic() - waited < args.wait_max:
        print(f"   load average {os.getloadavg()[0]:.2f} >= {args.max_load}: waiting 30 s", file=sys.stderr, flush=True)
        time.sleep(30)
    waited = time.monotonic() - waited
    load_before, busy = list(os.getloadavg()), busy_processes()
    print(f"== --cores {cores}{' REACT_CPU_LIMIT=off' if off else ''} [{time.strftime('%H:%M:%S')}] "
          f"load {load_before[0]:.2f}", file=sys.stderr, flush=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with LoadSampler() as load:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=workdir)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    log_path = workdir / "results/logs/finetune" / f"{RUN}.log"
    log = log_path.read_text() if log_path.exists() else ""
    if proc.returncode != 0:
        raise SystemExit(f"run {label} failed:\n{proc.stderr[-3000:]}\n{log[-3000:]}")
    times = step_times(log)
    threads = THREADS_LINE.search(log)
    timing = json.loads((workdir / f"results/finetune/{RUN}/checkpoints/timing.json").read_text())
    result = {
        "label": label, "cores": cores, "limit": not off, "threads_line": threads.group(1) if threads else None,
        "steps": len(times), "step_s": [round(t, 3) for t in times],
        "median_step_s": statistics.median(times[1:] or times), "min_step_s": min(times[1:] or times),
        "first_step_s": times[0] if times else None,
        "train_seconds_per_step": timing["seconds_per_step"], "job_wall_s": round(wall, 1),
        "cpu_s": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1),
        "waited_for_load_s": round(waited), "load_before": load_before, "load_during_mean": round(statistics.mean(load.samples), 2),
        "load_during_max": max(load.samples), "busy_processes_before": busy,
    }
    print(f"   {result['threads_line']}\n   median step {result['median_step_s']:.2f} s, steps {result['step_s']}, "
          f"job {wall:.0f} s, load during {result['load_during_mean']:.2f}", file=sys.stderr, flush=True)
    shutil.rmtree(workdir, ignore_errors=True)
    return result


def summarize(runs: list[dict]) -> dict:
    """Ratios to ``--cores 2`` within each pass through --order, then their median over passes.

    Other people's jobs on a shared machine come and go over minutes: runs of one pass
    are close in time, so a ratio within a pass compares like with like. Per label also
    the fastest step of all its runs (other jobs only ever add time).
    """
    passes: dict[int, dict[str, dict]] = {}
    fastest: dict[str, float] = {}
    for r in runs:
        passes.setdefault(r["pass"], {})[r["label"]] = r
        fastest[r["label"]] = min(fastest.get(r["label"], math.inf), r["min_step_s"])
    per_pass = []
    for number, by_label in sorted(passes.items()):
        if "2" not in by_label:
            continue
        base = by_label["2"]["median_step_s"]
        per_pass.append({"pass": number, "median_step_s": {k: v["median_step_s"] for k, v in by_label.items()},
                         "load_during": {k: v["load_during_mean"] for k, v in by_label.items()},
                         "ratio_to_cores_2": {k: round(v["median_step_s"] / base, 3)
                                              for k, v in by_label.items() if k != "2"}})
    labels = {k for p in per_pass for k in p["ratio_to_cores_2"]}
    ratios = {k: round(statistics.median(p["ratio_to_cores_2"][k] for p in per_pass if k in p["ratio_to_cores_2"]), 3)
              for k in sorted(labels)}
    out: dict = {"per_pass": per_pass, "median_ratio_to_cores_2": ratios, "fastest_step_s": fastest}
    if "2" in fastest:
        out["fastest_ratio_to_cores_2"] = {k: round(v / fastest["2"], 3) for k, v in fastest.items() if k != "2"}
    if "8" in ratios:
        out["cores_8_within_10_percent"] = ratios["8"] <= 1.10
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    order = [x.strip() for x in args.order.split(",") if x.strip()] + (["8off"] if args.unlimited else [])
    started = dt.datetime.now()
    with tempfile.TemporaryDirectory(prefix="threads-bench-") as scratch:
        runs = [{**run_once(args, label, Path(scratch)), "pass": i} for i in range(args.repeat) for label in order]
    summary = summarize(runs)
    out = Path(args.out) if args.out else PROJECT / "benchmarks/results" / f"threads-{started:%Y-%m-%d}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "threads", "started": started.isoformat(timespec="seconds"),
        "finished": dt.datetime.now().isoformat(timespec="seconds"), "command": sys.argv, "args": vars(args),
        "machine": machine(), "runs": runs, "summary": summary,
    }, indent=1))
    for p in summary["per_pass"]:
        print(f"pass {p['pass']}: " + ", ".join(f"{k} {v:.2f} s/step (load {p['load_during'][k]:.1f})"
                                                 for k, v in p["median_step_s"].items()))
    for label, ratio in summary["median_ratio_to_cores_2"].items():
        print(f"{label:>6}: x{ratio:.3f} of --cores 2 per step (median over passes); fastest step "
              f"{summary['fastest_step_s'][label]:.2f} s against {summary['fastest_step_s'].get('2', math.nan):.2f} s")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
