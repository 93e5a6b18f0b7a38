"""vLLM CPU engine start, broken down: import, engine processes, model load, KV cache, first call.

Issue 12: the engine took 99 s to start on a 2-vCPU AMD EPYC (24 s on a faster machine).
Each configuration runs in a fresh process started as Snakemake starts the evaluate job
(``OMP_NUM_THREADS`` and the BLAS variables set to ``--omp``), through the project's
engine (react.inference.registry.start_engine with the config's vLLM options), and reports:

  import_s        ``from vllm import LLM`` in the job's process
  construct_s     ``LLM(...)``: engine core and worker processes spawned (each imports
                  torch and vLLM again), model loaded, KV cache allocated, set up
  first_call_s    a one-token generate
  phases          vLLM's own log lines, as seconds since the job started (weights
                  loaded, KV cache size, ``init engine ... took``), to place the time

    .venv/bin/python benchmarks/engine_start.py --omp 8off,8,2 --repeat 2
    .venv/bin/python benchmarks/engine_start.py --omp 2 --kv-cache-gib 1
    .venv/bin/python benchmarks/engine_start.py --omp 2 --env VLLM_ENABLE_V1_MULTIPROCESSING=0

Only the standard library is imported at the top (vLLM's spawned children re-import this
file, as workflow/scripts/evaluate.py explains). Results: benchmarks/results/engine_start-<date>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
BLAS_VARS = ("OMP_NUM_THREADS", "GOTO_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")  # what Snakemake exports for a job's threads
VLLM_LINE = re.compile(r"^(?:\(\w+ pid=\d+\) )?(INFO|DEBUG|WARNING) (\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) \[([^\]]+)\] (.*)$")
PHASES = ("Loading weights took", "Model loading took", "Initializing model took", "KV cache",
          "init engine", "Automatically detected platform", "OpenMP thread binding", "Starting",
          "Warming up", "warming up", "compil")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="results/models/smollm2-135m")
    p.add_argument("--omp", default="8off,8,2",
                   help="the job's thread figures to compare; Noff: N with REACT_CPU_LIMIT=off, the behaviour before "
                        "the limit (default: %(default)s)")
    p.add_argument("--kv-cache-gib", type=int, default=None, help="default: the config's backends.vllm.kv_cache_gib")
    p.add_argument("--max-model-len", type=int, default=None)
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                   help="an extra variable for the job (e.g. VLLM_ENABLE_V1_MULTIPROCESSING=0)")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--config", default="config/config.yaml")
    p.add_argument("--out", default=None)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def worker(spec: dict) -> None:
    """One engine start, in the job's own process (as workflow/scripts/evaluate.py runs it)."""
    t0 = time.perf_counter()
    sys.path.insert(0, str(PROJECT / "src"))
    from types import SimpleNamespace

    from react.threads import limit_job_threads

    job = SimpleNamespace(threads=spec["threads"])
    choice = limit_job_threads(job)  # what logged() does for every job
    print(f"PHASE {time.perf_counter() - t0:.3f} {choice.describe()}", flush=True)
    import yaml

    config = yaml.safe_load((PROJECT / spec["config"]).read_text())
    options = {"threads": job.threads, **config["backends"]["vllm"]}
    if spec["kv_cache_gib"] is not None:
        options["kv_cache_gib"] = spec["kv_cache_gib"]
    if spec["max_model_len"] is not None:
        options["max_model_len"] = spec["max_model_len"]
    t = time.perf_counter()
    import torch  # noqa: F401 - timed apart from vLLM's own import

    print(f"PHASE {time.perf_counter() - t0:.3f} import torch {time.perf_counter() - t:.2f}", flush=True)
    t = time.perf_counter()
    from vllm import LLM  # noqa: F401

    import_s = time.perf_counter() - t
    print(f"PHASE {time.perf_counter() - t0:.3f} import vllm {import_s:.2f}", flush=True)
    from react.config.settings import default_engine_settings
    from react.inference.base import Sampling
    from react.inference.registry import ModelRef, start_engine

    settings = default_engine_settings("vllm", **options)  # the schema's defaults, as a model entry gets them
    t = time.perf_counter()
    backend = start_engine(ModelRef("engine-start", str(spec["model"]), "vllm", settings))
    construct_s = time.perf_counter() - t
    print(f"PHASE {time.perf_counter() - t0:.3f} LLM() {construct_s:.2f}", flush=True)
    t = time.perf_counter()
    backend.generate(["Question: warm-up\nThought 1:"], ["\n"], Sampling(max_new_tokens=1), [0])
    first = time.perf_counter() - t
    print(f"PHASE {time.perf_counter() - t0:.3f} first call {first:.2f}", flush=True)
    print("RESULT " + json.dumps({"threads_line": choice.describe(), "import_s": import_s, "construct_s": construct_s,
                                  "first_call_s": first, "options": options,
                                  "bind": os.environ.get("VLLM_CPU_OMP_THREADS_BIND")}), flush=True)
    backend.close()


def run_one(args: argparse.Namespace, label: str) -> dict:
    omp, unlimited = int(label.removesuffix("off")), label.endswith("off")
    spec = {"threads": omp, "model": str(Path(args.model).resolve()), "config": args.config,
            "kv_cache_gib": args.kv_cache_gib, "max_model_len": args.max_model_len}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(spec, fh)
    env = {**os.environ, **{v: str(omp) for v in BLAS_VARS}, "VLLM_LOGGING_LEVEL": "INFO", "PYTHONUNBUFFERED": "1"}
    for name in ("VLLM_CPU_OMP_THREADS_BIND", "VLLM_CPU_KVCACHE_SPACE", "REACT_CPU_LIMIT"):
        env.pop(name, None)
    if unlimited:
        env["REACT_CPU_LIMIT"] = "off"
    env.update(item.split("=", 1) for item in args.env)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", fh.name], env=env,
                          capture_output=True, text=True, cwd=PROJECT)
    wall = time.perf_counter() - started
    os.unlink(fh.name)
    out = proc.stdout + proc.stderr
    if proc.returncode != 0 or "RESULT " not in out:
        raise SystemExit(f"engine start {label} failed:\n{out[-4000:]}")
    result = json.loads(out.split("RESULT ", 1)[1].splitlines()[0])
    marks = [line.split(" ", 2)[1:] for line in out.splitlines() if line.startswith("PHASE ")]
    # vLLM's lines carry wall-clock stamps: place them against the job's own start.
    job_start = dt.datetime.now() - dt.timedelta(seconds=wall)
    phases = []
    for line in out.splitlines():
        m = VLLM_LINE.match(line.strip())
        if m and any(key in m.group(4) for key in PHASES):
            stamp = dt.datetime.strptime(f"{job_start.year}-{m.group(2)}", "%Y-%m-%d %H:%M:%S.%f"
                                         if "." in m.group(2) else "%Y-%m-%d %H:%M:%S")
            phases.append([round((stamp - job_start).total_seconds(), 2), m.group(3), m.group(4)[:160]])
    result.update(label=label, omp=omp, limit=not unlimited, wall_s=round(wall, 2), load_before=load, marks=marks, phases=phases,
                  warnings=[line[:200] for line in out.splitlines() if "WARNING" in line][:20])
    print(f"== {label}: import {result['import_s']:.1f} s, LLM() {result['construct_s']:.1f} s, first call "
          f"{result['first_call_s']:.1f} s, process {wall:.1f} s (load before {load:.2f})", file=sys.stderr, flush=True)
    for t, where, text in phases:
        print(f"   {t:7.2f}  {where:<32} {text}", file=sys.stderr)
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker(json.loads(Path(args.worker).read_text()))
        return 0
    sys.path.insert(0, str(PROJECT / "benchmarks"))
    from agent_speed import machine

    started = dt.datetime.now()
    labels = [x.strip() for x in args.omp.split(",") if x.strip()]
    runs = [run_one(args, label) for _ in range(args.repeat) for label in labels]
    out = Path(args.out) if args.out else PROJECT / "benchmarks/results" / f"engine_start-{started:%Y-%m-%d}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "engine_start", "started": started.isoformat(timespec="seconds"),
                               "command": sys.argv, "args": vars(args), "machine": machine(), "runs": runs}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
