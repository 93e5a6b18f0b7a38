"""Training throughput: the default finetune with and without length grouping, padding-free batches and packing.

Same model, data and hyperparameters as the pipeline's default finetune (SmolLM2-135M on
``results/datasets/oracle-train.jsonl``, ``preset: cpu``: LoRA r 16, batch 2 x 2
accumulation, max length 1024, lr 2e-4, fp32, one epoch), trained through
``react.training.trainer.make_trainer`` in variants that differ only in how examples are batched:

  baseline         padded micro-batches (right padding to the longer example), random order
  group_by_length  transformers' ``train_sampling_strategy="group_by_length"``: each step's
                   4 examples are neighbours in a length-sorted window of 32, so a
                   micro-batch carries little padding; same examples, steps and loss rule
  padding_free     the baseline's micro-batches concatenated into one row without pads
                   (trl ``padding_free=True``; position_ids restart at each example)
  packing          trl ``packing=True`` (best-fit decreasing into 1024-token rows, which
                   turns padding_free on), 2 x 2 rows per step, as the preset's batch
  packing_bs1      the same packing, 1 x 2 rows per step (about the baseline's 4 examples)

``NAME@SEED`` runs a variant with another seed (LoRA init and data order), to see how far
two runs of the same setting differ. Each run is a fresh process (a clean peak RSS).

Per run: training tokens/s (real tokens, pads excluded) and CPU seconds, padded tokens
processed, wall time, optimizer steps, peak RSS, first/final/mean training loss, the
per-step loss curve, and the trained adapter's per-token loss on a held-out slice (the next ``--heldout`` oracle trajectories of the dataset's seeded order,
not trained on; ``--eval-train`` adds the training set). Checks, each an assertion (exit status 1 when one fails):

* masks: every example trl prepared, and every example in every batch the model got,
  carries labels = input_ids with -100 exactly where ``assistant_masks`` is 0 (and on pads);
  a full epoch shows every example exactly once, uncut;
* isolation: the per-token log-probabilities of the labelled tokens of a real training
  batch (the first one, with the trained adapter, in eval mode) equal those of each example
  run alone (max |diff| < 1e-3). For packed rows also reported: the same row without the
  position_ids (as ``packing_strategy="wrapped"`` feeds it, attention_mask all ones), which
  lets examples attend to each other.

    .venv/bin/python benchmarks/train_throughput.py                    # all variants, full epoch
    .venv/bin/python benchmarks/train_throughput.py --max-steps 4 --variants baseline,packing

Results: benchmarks/results/train_throughput-<date>.json (``--out``). Before each run it
waits (polling every 30 s, up to ``--wait-max`` s) for the 1-minute load average to drop
below ``--max-load`` (``--wait-max`` before the first run, ``--wait-between`` before the
others), and records the load before and during each run and the run's CPU utilisation
(CPU seconds / wall seconds: about ``--threads`` when nothing else competes for the cores).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
if str(PROJECT / "src") not in sys.path:
    sys.path.insert(0, str(PROJECT / "src"))

# hp: hyperparameter overrides of the preset; sft: further SFTConfig fields (make_trainer's sft_args).
# Every variant names group_by_length so that it means the same whatever the preset's default is.
VARIANTS = {
    "baseline": {"hp": {"group_by_length": False}, "sft": {},
                 "about": "padded micro-batches, random order (the project's setting before this benchmark)"},
    "group_by_length": {"hp": {"group_by_length": True}, "sft": {},
                        "about": "train_sampling_strategy=group_by_length: same examples and steps, length-sorted"},
    # trl refuses padding_free without packing while max_length is set; tokenize_records has already cut at it.
    "padding_free": {"hp": {"group_by_length": False}, "sft": {"padding_free": True, "max_length": None},
                     "about": "the baseline's micro-batches flattened into one row, no pads"},
    "packing": {"hp": {"group_by_length": False}, "sft": {"packing": True, "packing_strategy": "bfd"},
                "about": "trl BFD packing into max_length rows (padding-free), 2 x 2 rows per step"},
    "packing_bs1": {"hp": {"group_by_length": False, "per_device_train_batch_size": 1},
                    "sft": {"packing": True, "packing_strategy": "bfd"},
                    "about": "trl BFD packing, 1 x 2 rows per step (about 4 examples, like the baseline)"},
}
DEFAULT_RUNS = "baseline,group_by_length,padding_free,packing,packing_bs1,baseline@1,group_by_length@1,baseline@2"
ISOLATION_TOLERANCE = 1e-3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", default=DEFAULT_RUNS,
                   help=f"comma-separated NAME or NAME@SEED; names: {', '.join(VARIANTS)} (default: %(default)s)")
    p.add_argument("--max-steps", type=int, default=-1, help="stop after N optimizer steps (default: the full epoch)")
    p.add_argument("--model", default="results/models/smollm2-135m")
    p.add_argument("--dataset", default="results/datasets/oracle-train.jsonl")
    p.add_argument("--preset", default="cpu")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--heldout", type=int, default=64,
                   help="held-out examples to score the adapters on (0: none); built from --trajectories")
    p.add_argument("--eval-train", action="store_true",
                   help="also score each adapter on the whole training set (a forward per example: minutes)")
    p.add_argument("--trajectories", default="results/trajectories/oracle/train",
                   help="the oracle teacher's episode shards the dataset was built from")
    p.add_argument("--instruction", default="package:prompts/instruction.txt")
    p.add_argument("--eval-split", default="results/data/hotpotqa/dev.parquet")
    p.add_argument("--max-load", type=float, default=1.2, help="wait for the 1-min load average to drop below this")
    p.add_argument("--wait-max", type=float, default=1200, help="seconds to wait for it before the first run")
    p.add_argument("--wait-between", type=float, default=180,
                   help="seconds to wait for it before each later run (the previous run's own load decays)")
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/results/train_throughput-<date>.json)")
    p.add_argument("--worker", help=argparse.SUPPRESS)  # internal: one training run, spec JSON path
    p.add_argument("--worker-out", help=argparse.SUPPRESS)
    return p.parse_args(argv)


# --- the parent: one process per run ---------------------------------------------------------


def loadavg() -> list[float]:
    return list(os.getloadavg())


def wait_for_quiet(max_load: float, wait_max: float) -> dict:
    started, first = time.monotonic(), loadavg()[0]
    while loadavg()[0] >= max_load and time.monotonic() - started < wait_max:
        print(f"  load average {loadavg()[0]:.2f} >= {max_load}: waiting 30 s", file=sys.stderr, flush=True)
        time.sleep(30)
    now = loadavg()
    return {"load_when_ready": first, "waited_s": round(time.monotonic() - started, 1), "load_at_start": now,
            "quiet": now[0] < max_load}


class LoadSampler(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.samples: list[float] = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.wait(5):
            self.samples.append(loadavg()[0])


def build_heldout(args: argparse.Namespace, tmp: Path) -> tuple[Path | None, dict]:
    """The next ``args.heldout`` examples after the training set's in the dataset builder's seeded order."""
    if args.heldout <= 0:
        return None, {"n": 0}
    from react.data.training_sets import build_dataset
    from react.io import iter_jsonl

    shards = sorted(str(p) for p in Path(args.trajectories).glob("*.parquet"))
    manifest_path = Path(args.dataset).with_suffix("").with_suffix(".manifest.json")
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    if not shards or not manifest:
        print(f"no held-out slice: {args.trajectories} has no shards or {manifest_path} is missing", file=sys.stderr)
        return None, {"n": 0, "why_none": "trajectory shards or dataset manifest missing"}
    train = {obj["id"]: obj for _, obj in iter_jsonl(args.dataset)}
    out = tmp / "bigger.jsonl"
    build_dataset([(s["name"], shards) for s in manifest["sources"]], args.instruction, args.eval_split, out,
                  tmp / "bigger.manifest.json", fraction=manifest.get("fraction", 1.0),
                  max_examples=len(train) + args.heldout, seed=manifest.get("seed", 0), name="heldout")
    bigger = [obj for _, obj in iter_jsonl(out)]
    same = [obj for obj in bigger if obj["id"] in train]
    # A smaller set is a subset of a larger one with the same seed: the training set must come back as it is.
    if len(same) != len(train) or any(obj != train[obj["id"]] for obj in same):
        raise SystemExit(f"rebuilding {args.dataset} with more examples did not reproduce it: no held-out slice")
    held = [obj for obj in bigger if obj["id"] not in train]
    path = tmp / "heldout.jsonl"
    path.write_text("".join(json.dumps(obj, ensure_ascii=False) + "\n" for obj in held), encoding="utf-8")
    return path, {"n": len(held), "from": args.trajectories, "rule": "the next examples of the dataset's seeded order",
                  "ids_sha": __import__("hashlib").sha256(",".join(sorted(o["id"] for o in held)).encode()).hexdigest()}


def run_worker(spec: dict, tmp: Path, args: argparse.Namespace, wait_max: float) -> dict:
    name = spec["run"]
    spec_path, out_path = tmp / f"{name}.spec.json", tmp / f"{name}.out.json"
    spec_path.write_text(json.dumps(spec))
    quiet = wait_for_quiet(args.max_load, wait_max)
    print(f"== {name} [{time.strftime('%H:%M:%S')}] load {quiet['load_at_start'][0]:.2f}: {spec['about']}",
          file=sys.stderr, flush=True)
    sampler = LoadSampler()
    sampler.start()
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker", str(spec_path),
                             "--worker-out", str(out_path)], cwd=PROJECT)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    sampler.stop.set()
    sampler.join()
    if proc.returncode != 0 or not out_path.exists():
        raise SystemExit(f"run {name} failed (exit status {proc.returncode})")
    result = json.loads(out_path.read_text())
    samples = sampler.samples or [loadavg()[0]]
    result["process"] = {"wall_s": round(wall, 1), "peak_rss_gib": round(usage.ru_maxrss / 2**20, 3),
                         "cpu_s": round(usage.ru_utime + usage.ru_stime, 1)}
    result["load"] = {**quiet, "during_mean": round(statistics.mean(samples), 2), "during_max": max(samples),
                      "note": "1-min load average; this run's own threads add about --threads to it"}
    t = result["train"]
    print(f"   {t['tokens_per_s']:.1f} tokens/s, {t['steps']} steps, {t['wall_s']:.0f} s, "
          f"peak RSS {result['peak_rss_train_gib']:.2f} GiB, mean loss {t['mean_loss']:.4f}, "
          f"held-out loss {result['eval'].get('heldout_loss', float('nan')):.4f}", file=sys.stderr, flush=True)
    return result


def parse_runs(text: str, args: argparse.Namespace) -> list[dict]:
    specs = []
    for item in [x.strip() for x in text.split(",") if x.strip()]:
        name, _, seed = item.partition("@")
        if name not in VARIANTS:
            raise SystemExit(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
        hp = dict(VARIANTS[name]["hp"])
        if seed:
            hp["seed"] = int(seed)
        if args.max_steps > 0:
            hp["max_steps"] = args.max_steps
        specs.append({"run": item, "variant": name, "hp_overrides": hp, "sft_args": VARIANTS[name]["sft"],
                      "about": VARIANTS[name]["about"], **{k: getattr(args, k) for k in
                                                            ("model", "dataset", "preset", "threads", "eval_train")}})
    return specs


def summarize(results: list[dict]) -> dict:
    by_run = {r["run"]: r for r in results}
    base = by_run.get("baseline")
    out: dict = {}
    if base:
        out["speedup_vs_baseline"] = {
            r["run"]: {"tokens_per_s": round(r["train"]["tokens_per_s"] / base["train"]["tokens_per_s"], 3),
                       "tokens_per_cpu_s": round(r["train"]["tokens_per_cpu_s"] / base["train"]["tokens_per_cpu_s"], 3)}
            for r in results
        }
    for key in ("heldout_loss", "train_loss_after"):
        values = {r["run"]: r["eval"][key] for r in results if r["eval"].get(key) is not None}
        if not values:
            continue
        groups: dict[str, list[float]] = {}
        for run, v in values.items():
            groups.setdefault(run.partition("@")[0], []).append(v)
        out[key] = {"by_run": values,
                    "by_variant": {k: {"mean": statistics.mean(v), "min": min(v), "max": max(v), "n": len(v)}
                                   for k, v in groups.items()}}
        if base and "baseline" in groups and len(groups["baseline"]) > 1:
            out[key]["baseline_seed_spread"] = max(groups["baseline"]) - min(groups["baseline"])
    return out


def print_table(results: list[dict]) -> None:
    head = (f"{'run':<18}{'tok/s':>8}{'tok/cpu-s':>10}{'real tok':>9}{'padded':>9}{'steps':>6}{'wall s':>8}"
            f"{'RSS GiB':>8}{'loss 1st':>9}{'final':>8}{'mean':>8}{'train':>8}{'heldout':>8}{'masks':>6}"
            f"{'isol.':>9}{'load':>6}")
    print(head)
    for r in results:
        t, e = r["train"], r["eval"]
        print(f"{r['run']:<18}{t['tokens_per_s']:>8.1f}{t['tokens_per_cpu_s']:>10.1f}{t['real_tokens']:>9}"
              f"{t['padded_tokens']:>9}{t['steps']:>6}{t['wall_s']:>8.0f}{r['peak_rss_train_gib']:>8.2f}"
              f"{t['first_loss']:>9.4f}{t['final_loss']:>8.4f}{t['mean_loss']:>8.4f}"
              f"{e.get('train_loss_after', float('nan')):>8.4f}{e.get('heldout_loss', float('nan')):>8.4f}"
              f"{'ok' if r['checks']['masks_ok'] else 'FAIL':>6}{r['checks']['isolation_max_abs_diff']:>9.1e}"
              f"{r['load']['during_mean']:>6.2f}")


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), 0)
    from importlib.metadata import version

    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gib": round(mem / 2**20, 1), "python": platform.python_version(),
            "packages": {p: version(p) for p in ("torch", "transformers", "trl", "peft", "accelerate", "datasets")}}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker(json.loads(Path(args.worker).read_text()), Path(args.worker_out))
    specs = parse_runs(args.variants, args)
    out = Path(args.out or PROJECT / f"benchmarks/results/train_throughput-{dt.date.today().isoformat()}.json")
    started = dt.datetime.now().isoformat(timespec="seconds")
    results = []
    with tempfile.TemporaryDirectory(prefix="train_throughput-") as tmp:
        heldout_path, heldout = build_heldout(args, Path(tmp))
        for spec in specs:
            spec["heldout"] = str(heldout_path) if heldout_path else None
            spec["base_loss"] = spec["run"] == specs[0]["run"]  # the base model's losses, once
            results.append(run_worker(spec, Path(tmp), args, args.wait_between if results else args.wait_max))
    report = {
        "benchmark": "train_throughput", "started": started, "finished": dt.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]), "machine": machine(),
        "setup": {"model": args.model, "dataset": args.dataset, "preset": args.preset, "max_steps": args.max_steps,
                  "threads": args.threads, "heldout": heldout, "variants": {k: v for k, v in VARIANTS.items()}},
        "runs": results, "summary": summarize(results),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    print_table(results)
    print(json.dumps(report["summary"], indent=2))
    print(f"wrote {out}")
    failed = [r["run"] for r in results if not (r["checks"]["masks_ok"] and r["checks"]["isolation_ok"])]
    if failed:
        print(f"checks failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


# --- the worker: one training run ------------------------------------------------------------


def segments(batch: dict) -> list[tuple[list[int], list[int], int, int, int]]:
    """(input_ids, labels, row, start, end) of each example in a collated batch, and checks on pads."""
    ids, labels = batch["input_ids"], batch["labels"]
    out = []
    if "attention_mask" in batch:  # padded rows, one example each
        for row in range(ids.shape[0]):
            n = int(batch["attention_mask"][row].sum())
            assert batch["attention_mask"][row, :n].all() and not batch["attention_mask"][row, n:].any(), "not right-padded"
            assert (labels[row, n:] == -100).all(), "a pad carries a label"
            out.append((ids[row, :n].tolist(), labels[row, :n].tolist(), row, 0, n))
    else:  # padding-free: one row, position_ids restart at each example
        assert ids.shape[0] == 1 and "position_ids" in batch
        pos = batch["position_ids"][0]
        starts = (pos == 0).nonzero().flatten().tolist() + [ids.shape[1]]
        for a, b in zip(starts, starts[1:]):
            out.append((ids[0, a:b].tolist(), labels[0, a:b].tolist(), 0, a, b))
    return out


class Recorder:
    """Wraps the trainer's compute_loss: counts tokens and checks every batch's labels."""

    def __init__(self, trainer, expected: dict[tuple, list[int]]):
        self.trainer, self.expected, self.inner = trainer, expected, trainer.compute_loss
        self.seen: dict[tuple, int] = {}
        self.real = self.padded = self.trainable = self.sequences = self.micro_batches = 0
        self.first_batch = None
        self.mask_errors: list[str] = []

    def __call__(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.first_batch is None:
            self.first_batch = {k: (v.detach().clone() if hasattr(v, "clone") else v) for k, v in inputs.items()}
        self.micro_batches += 1
        self.padded += int(inputs["input_ids"].numel())
        self.trainable += int((inputs["labels"] != -100).sum())
        for ids, labels, *_ in segments(inputs):
            key = tuple(ids)
            self.real += len(ids)
            self.sequences += 1
            self.seen[key] = self.seen.get(key, 0) + 1
            want = self.expected.get(key)
            if want is None:
                self.mask_errors.append(f"batch {self.micro_batches}: an example that is not a whole training example")
            elif labels != want:
                bad = sum(a != b for a, b in zip(labels, want))
                self.mask_errors.append(f"batch {self.micro_batches}: labels differ from assistant_masks at {bad} tokens")
        return self.inner(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)


def label_logprobs(model, batch: dict):
    """Log-probability of each labelled token (label != -100), in batch order, as the training forward computes it."""
    import torch

    inputs = {k: v for k, v in batch.items() if k != "labels"}
    logits = model(**inputs, use_cache=False).logits[:, :-1].float()
    target = batch["labels"][:, 1:]
    keep = target != -100
    lp = torch.log_softmax(logits, -1).gather(-1, target.clamp(min=0)[..., None])[..., 0]
    return lp[keep]


def isolation_check(model, batch: dict) -> dict:
    """The batch's per-token log-probs against each example alone; for packed rows also without position_ids."""
    import torch

    model.eval()
    with torch.no_grad():
        together = label_logprobs(model, batch)
        alone = []
        for ids, labels, *_ in segments(batch):
            one = {"input_ids": torch.tensor([ids]), "labels": torch.tensor([labels])}
            alone.append(label_logprobs(model, one))
        alone = torch.cat(alone)
        out = {"labelled_tokens": int(together.numel()),
               "max_abs_diff": float((together - alone).abs().max()) if together.numel() else 0.0}
        if "position_ids" in batch:  # a packed row fed as one long sequence, the way wrapped packing feeds it
            flat = {"input_ids": batch["input_ids"], "labels": batch["labels"],
                    "attention_mask": torch.ones_like(batch["input_ids"])}
            leaked = label_logprobs(model, flat)
            out["without_position_ids_max_abs_diff"] = float((leaked - alone).abs().max())
            out["without_position_ids_mean_abs_diff"] = float((leaked - alone).abs().mean())
    model.train()
    return out


def mean_token_loss(model, dataset) -> float:
    """Per-token NLL on the labelled tokens, each example run alone (no padding), trained adapter as it is."""
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for row in dataset:
            labels = [t if m else -100 for t, m in zip(row["input_ids"], row["assistant_masks"])]
            lp = label_logprobs(model, {"input_ids": torch.tensor([row["input_ids"]]), "labels": torch.tensor([labels])})
            total -= float(lp.sum())
            count += lp.numel()
    model.train()
    return total / count


def worker(spec: dict, out_path: Path) -> int:
    import logging

    import torch
    from transformers import AutoTokenizer

    from react.training.presets import Hyperparameters
    from react.training.tokenize import read_records, tokenize_records
    from react.training.trainer import make_trainer

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    torch.set_num_threads(spec["threads"])
    hp = Hyperparameters.from_preset(spec["preset"], spec["hp_overrides"])
    tokenizer = AutoTokenizer.from_pretrained(spec["model"])
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    full = tokenize_records(read_records(spec["dataset"]), tokenizer, hp.max_length, hp.mask_observations)
    dataset = full.select_columns(["input_ids", "assistant_masks"])
    expected = {tuple(ids): [t if m else -100 for t, m in zip(ids, mask)]
                for ids, mask in zip(dataset["input_ids"], dataset["assistant_masks"])}
    assert len(expected) == len(dataset), "two training examples have the same tokens"
    heldout = None
    if spec.get("heldout"):
        heldout = tokenize_records(read_records(spec["heldout"]), tokenizer, hp.max_length, hp.mask_observations)

    with tempfile.TemporaryDirectory(prefix="tt-ckpt-") as ckpt:
        trainer = make_trainer(spec["model"], dataset, ckpt, hp, tokenizer, "cpu", sft_args=spec["sft_args"])
        rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # What trl prepared: every example whole, once, with its masked labels (packed rows split at seq_lengths).
        prepared_errors, prepared_seen = [], {}
        for row in trainer.train_dataset:
            lengths = row.get("seq_lengths") or [len(row["input_ids"])]
            start = 0
            for n in lengths:
                key = tuple(row["input_ids"][start:start + n])
                prepared_seen[key] = prepared_seen.get(key, 0) + 1
                if expected.get(key) != row["labels"][start:start + n]:
                    prepared_errors.append(f"prepared row: labels or tokens differ at offset {start}")
                start += n
        if sorted(prepared_seen.values()) != [1] * len(expected) or set(prepared_seen) != set(expected):
            prepared_errors.append("the prepared dataset does not hold every training example exactly once")
        base_losses = {}
        if spec.get("base_loss") and heldout is not None:
            with trainer.model.disable_adapter():
                base_losses["heldout_loss_base"] = mean_token_loss(trainer.model, heldout)
        recorder = Recorder(trainer, expected)
        trainer.compute_loss = recorder
        cpu0, started = time.process_time(), time.perf_counter()
        output = trainer.train()
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu0
        rss_train = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        trainer.compute_loss = recorder.inner
        full_epoch = hp.max_steps == -1
        if full_epoch and (sorted(recorder.seen.values()) != [1] * len(expected) or set(recorder.seen) != set(expected)):
            recorder.mask_errors.append("the epoch did not train every example exactly once")
        isolation = isolation_check(trainer.model, recorder.first_batch)
        evals = dict(base_losses)
        if heldout is not None:
            evals["heldout_loss"] = mean_token_loss(trainer.model, heldout)
            evals["heldout_examples"] = len(heldout)
            evals["heldout_labelled_tokens"] = sum(sum(m) for m in heldout["assistant_masks"])
        if spec.get("eval_train"):
            evals["train_loss_after"] = mean_token_loss(trainer.model, full)
        history = [e for e in trainer.state.log_history if "loss" in e and "step" in e]
        num_tokens = [e["num_tokens"] for e in trainer.state.log_history if "num_tokens" in e]
        losses = [float(e["loss"]) for e in history]
        train = {
            "steps": trainer.state.global_step, "micro_batches": recorder.micro_batches,
            "sequences": recorder.sequences, "examples_per_step": round(recorder.sequences / trainer.state.global_step, 2),
            "real_tokens": recorder.real, "padded_tokens": recorder.padded,
            "pad_fraction": round(1 - recorder.real / recorder.padded, 4), "trainable_tokens": recorder.trainable,
            "trl_num_tokens": int(num_tokens[-1]) if num_tokens else None,
            "wall_s": round(wall, 2), "cpu_s": round(cpu, 1), "cpu_utilisation": round(cpu / wall, 2),
            "tokens_per_s": round(recorder.real / wall, 2), "tokens_per_cpu_s": round(recorder.real / cpu, 2),
            "padded_tokens_per_s": round(recorder.padded / wall, 2), "s_per_step": round(wall / trainer.state.global_step, 2),
            "first_loss": losses[0], "final_loss": losses[-1], "mean_loss": float(output.training_loss),
            "loss_curve": [[int(e["step"]), round(float(e["loss"]), 5)] for e in history],
        }
    checks = {
        "masks_ok": not (prepared_errors or recorder.mask_errors), "mask_errors": (prepared_errors + recorder.mask_errors)[:10],
        "examples_trained": len(recorder.seen), "examples": len(expected),
        "isolation_ok": isolation["max_abs_diff"] < ISOLATION_TOLERANCE, "isolation_max_abs_diff": isolation["max_abs_diff"],
        "isolation": isolation,
    }
    result = {"run": spec["run"], "variant": spec["variant"], "about": spec["about"], "hp_overrides": spec["hp_overrides"],
              "sft_args": spec["sft_args"], "hyperparameters": hp.as_dict(), "threads": spec["threads"],
              "peak_rss_loaded_gib": round(rss_loaded / 2**20, 3), "peak_rss_train_gib": round(rss_train / 2**20, 3),
              "train": train, "eval": evals, "checks": checks}
    out_path.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
