"""A GRPO run: trl's GRPOTrainer, the project's agent as its rollouts, every step's rollouts and numbers kept.

:func:`train_grpo` trains a LoRA on the start model with trl's ``GRPOTrainer``; its
``rollout_func`` plays each group of episodes through the agent loop (react.rl.rollout).
It writes, under ``results/rl/<run>/`` (react.paths):

- ``checkpoints/checkpoint-<step>/``: trl's checkpoints (adapter, optimizer, RNG states);
- ``rollouts/step-<step>.parquet``: the step's episodes, the evaluation's own rows
  (react.schemas.EPISODE_SCHEMA; ``python -m react show`` reads them);
- ``steps.parquet``: one row per step (reward, EM, F1, finished and invalid-action %,
  KL, loss, tokens, whether every rollout failed), provenance in its metadata;
- ``curves.png``, ``adapter/`` (the last step's adapter) and ``run.json`` (the summary).

Checkpoints and rollouts are not the rule's outputs, so a killed job keeps them: the next run
with the same settings and inputs (``run-key.json``) resumes from the last checkpoint and
overwrites the rollouts of the steps it repeats, which its per-step seeds make the same.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
import shutil
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from react.io import PROVENANCE_KEY, atomic_dir, atomic_path, read_parquet, write_parquet
from react.provenance import sha256_json
from react.rl.rollout import Rollouts, episode_reward, make_reward_func, make_rollout_func
from react.rl.settings import GRPOSettings
from react.schemas import EPISODE_SCHEMA

log = logging.getLogger(__name__)

RUN_KEY_FILE = "run-key.json"  # in the checkpoints folder: what its checkpoints were trained with
STEP_FILE = "step-{step:05d}.parquet"
_CHECKPOINT = re.compile(r"checkpoint-(\d+)$")
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")

METRICS_SCHEMA = pa.schema([
    ("step", pa.int64()),
    ("n_rollouts", pa.int64()),
    ("reward", pa.float64()),  # mean over the step's rollouts
    ("reward_std", pa.float64()),
    ("em", pa.float64()),  # percent
    ("f1", pa.float64()),  # percent
    ("finished_pct", pa.float64()),
    ("invalid_action_pct", pa.float64()),  # of the steps taken
    ("mean_steps", pa.float64()),
    ("groups_with_signal", pa.int64()),  # groups whose rewards differ (a non-zero advantage)
    ("all_failed", pa.bool_()),  # no rollout of the step was rewarded
    ("policy_tokens", pa.int64()),  # tokens the policy wrote and was trained on
    ("environment_tokens", pa.int64()),  # observations and the loop's text: masked out
    ("dropped_tokens", pa.int64()),  # generated but not kept by the loop
    ("loss", pa.float64()),
    ("kl", pa.float64()),  # null when beta = 0 (no reference model)
    ("grad_norm", pa.float64()),
    ("learning_rate", pa.float64()),
    ("seconds", pa.float64()),
])


@dataclass(frozen=True)
class RLFiles:
    """Where a run writes (react.paths RL_*)."""

    checkpoints: Path
    rollouts: Path
    adapter: Path
    metrics: Path
    curves: Path
    summary: Path

    def __post_init__(self) -> None:
        for name in ("checkpoints", "rollouts", "adapter", "metrics", "curves", "summary"):
            object.__setattr__(self, name, Path(getattr(self, name)))


def train_grpo(start_model: str | Path, rollouts: Rollouts, settings: GRPOSettings, files: RLFiles, *,
               threads: int | None = None, provenance: dict[str, Any] | None = None,
               callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Train ``settings.steps`` GRPO steps from ``start_model``; write ``files``; return the summary.

    ``provenance`` (the run's configuration and inputs) also decides whether existing
    checkpoints belong to this run: resumed if it matches, removed otherwise. ``callbacks``:
    further transformers ``TrainerCallback`` objects.
    """
    import torch

    if threads:
        torch.set_num_threads(threads)
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is marked experimental in trl 1.x
    on_gpu = torch.cuda.is_available()
    if settings.rollout_backend == "vllm" and not on_gpu:
        raise ValueError("rollout_backend 'vllm' samples with trl's colocated vLLM engine, which needs a CUDA GPU; "
                         "use rollout_backend transformers on a CPU")
    provenance = provenance or {}
    # The rollouts sample at the run's temperature with the run's seed; the rest of the agent is the evaluation's.
    sampling = dataclasses.replace(rollouts.agent.sampling, temperature=settings.temperature, top_p=settings.top_p)
    rollouts = dataclasses.replace(rollouts, agent=dataclasses.replace(rollouts.agent, sampling=sampling,
                                                                        seed=settings.seed))
    resume = _prepare_folders(files, sha256_json({"settings": settings.as_dict(), **provenance}))
    trainer = _make_trainer(start_model, rollouts, settings, files, on_gpu, provenance)
    for callback in callbacks:
        trainer.add_callback(callback)
    if resume:
        log.info("resuming from %s (a run with the same settings and inputs was stopped there)", resume)
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    wall = time.perf_counter() - started
    final = files.checkpoints / f"checkpoint-{trainer.state.global_step}"
    if trainer.state.global_step != settings.steps or not final.is_dir():
        raise RuntimeError(f"GRPO ended at step {trainer.state.global_step} of {settings.steps} without {final}")
    history = trainer.state.log_history
    del trainer

    table = metrics_table(files.rollouts, history, settings)
    summary = {
        "start_model": str(start_model),
        "settings": settings.as_dict(),
        "n_questions": len(rollouts.tasks),
        "steps": settings.steps,
        "rollouts": int(sum(table.column("n_rollouts").to_pylist())),
        "steps_all_failed": int(sum(table.column("all_failed").to_pylist())),
        "reward_fifths": reward_fifths(table.to_pylist(), binary=settings.reward.binary),
        "resumed_from": resume.name if resume else None,
    }
    with atomic_dir(files.adapter) as tmp:
        for name in ADAPTER_FILES:
            shutil.copy2(final / name, tmp / name)
        (tmp / "react_rl.json").write_text(json.dumps({**provenance, "rl": summary}, indent=2, sort_keys=True,
                                                      default=str))
    write_parquet(table, files.metrics, {**provenance, "rl": summary})
    from react.results.plots import plot_rl_curves  # matplotlib: only when drawing

    plot_rl_curves(table.to_pydict(), files.curves, _title(start_model, rollouts, settings))
    timing = {"wall_seconds": round(wall, 1), "seconds_per_step": round(wall / settings.steps, 2)}
    with atomic_path(files.summary) as tmp:
        tmp.write_text(json.dumps({**provenance, "rl": summary, "timing": timing}, indent=2, sort_keys=True,
                                  default=str))
    fifths = summary["reward_fifths"]
    log.info("GRPO done: %d steps in %.0f s; mean reward %.3f %s in the first fifth of the steps, %.3f %s in the last",
             settings.steps, wall, fifths["first"]["mean"], fifths["first"]["ci"], fifths["last"]["mean"],
             fifths["last"]["ci"])
    return {**summary, **timing}


def _prepare_folders(files: RLFiles, key: str) -> Path | None:
    """The checkpoint to resume from (None: start afresh, an earlier run's checkpoints and rollouts removed)."""
    key_file = files.checkpoints / RUN_KEY_FILE
    same = key_file.is_file() and json.loads(key_file.read_text()).get("key") == key
    checkpoints = sorted((int(m.group(1)), p) for p in files.checkpoints.glob("checkpoint-*")
                         if (m := _CHECKPOINT.search(p.name)) and (p / "trainer_state.json").is_file()) \
        if same else []
    if not checkpoints:
        for folder in (files.checkpoints, files.rollouts):
            if folder.exists():
                log.info("removing %s of an earlier run", folder)
                shutil.rmtree(folder)
    files.checkpoints.mkdir(parents=True, exist_ok=True)
    files.rollouts.mkdir(parents=True, exist_ok=True)
    key_file.write_text(json.dumps({"key": key}))
    return checkpoints[-1][1] if checkpoints else None


def _make_trainer(start_model: str | Path, rollouts: Rollouts, settings: GRPOSettings, files: RLFiles,
                  on_gpu: bool, provenance: dict[str, Any]):
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, ProgressCallback
    from trl import GRPOConfig, GRPOTrainer

    from react.training.callbacks import callbacks as step_callbacks

    tokenizer = AutoTokenizer.from_pretrained(start_model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dtype = torch.bfloat16 if on_gpu and settings.bf16 else torch.float32
    model = AutoModelForCausalLM.from_pretrained(start_model, dtype=dtype)
    sampler = None
    if settings.rollout_backend == "vllm":
        from react.rl.policy import VllmSampler

        def sampler(trainer):
            return VllmSampler(trainer.vllm_generation.llm)

    args = GRPOConfig(
        output_dir=str(files.checkpoints),
        max_steps=settings.steps,
        per_device_train_batch_size=settings.per_device_batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        num_generations=settings.group_size,
        num_iterations=1,  # on-policy: one update per batch of rollouts
        beta=settings.beta,
        temperature=settings.temperature,
        top_p=settings.top_p,
        top_k=0,
        # ReAct episodes end at a stop string or the step limit, never on an end-of-sequence token;
        # trl would count every one as truncated and mask it out.
        mask_truncated_completions=False,
        max_completion_length=rollouts.max_context,
        learning_rate=settings.learning_rate,
        lr_scheduler_type="constant",
        bf16=settings.bf16 and on_gpu,
        use_cpu=not on_gpu,
        gradient_checkpointing=False,
        logging_steps=1,
        save_strategy="steps",
        save_steps=settings.save_steps,
        save_total_limit=settings.save_total_limit,
        report_to=[],
        seed=settings.seed,
        data_seed=settings.seed,
        remove_unused_columns=False,  # the question ids reach rollout_func
        dataloader_pin_memory=on_gpu,
        disable_tqdm=True,
        use_vllm=settings.rollout_backend == "vllm",
        vllm_mode="colocate",
        vllm_max_model_length=rollouts.max_context,
    )
    recorder = StepRecorder(files.rollouts, settings, provenance)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[make_reward_func(settings.reward)],
        args=args,
        train_dataset=Dataset.from_dict({"prompt": list(rollouts.tasks)}),
        processing_class=tokenizer,
        peft_config=LoraConfig(r=settings.lora.r, lora_alpha=settings.lora.alpha, lora_dropout=settings.lora.dropout,
                               target_modules=list(settings.lora.target_modules), task_type="CAUSAL_LM"),
        rollout_func=make_rollout_func(rollouts, recorder, sampler),
    )
    log_steps, _ = step_callbacks(False)
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(log_steps)
    return trainer


class StepRecorder:
    """Writes each step's rollouts (episode rows, the run's provenance) and logs the step's reward, EM and failures."""

    def __init__(self, folder: Path, settings: GRPOSettings, provenance: dict[str, Any]) -> None:
        self.folder = folder
        self.settings = settings
        self.provenance = provenance

    def __call__(self, step: int, rows: list[dict[str, Any]], out: dict[str, list]) -> None:
        tokens = {"policy_tokens": sum(sum(m) for m in out["env_mask"]),
                  "environment_tokens": sum(len(m) - sum(m) for m in out["env_mask"]),
                  "dropped_tokens": sum(out["dropped_tokens"])}
        table = pa.Table.from_pylist(rows, schema=EPISODE_SCHEMA)
        write_parquet(table, self.folder / STEP_FILE.format(step=step),
                      {**self.provenance, "rl_step": step, "rollout_tokens": tokens})
        stats = rollout_stats(rows, self.settings)
        log.info("step %d rollouts: %d episodes, reward %.3f, EM %.1f%%, finished %.1f%%, %d of %d groups with a "
                 "signal", step, len(rows), stats["reward"], stats["em"], stats["finished_pct"],
                 stats["groups_with_signal"], len(rows) // self.settings.group_size)
        if stats["all_failed"]:
            log.warning("step %d: all %d rollouts failed (no reward): the step has no learning signal", step, len(rows))


def rollout_stats(rows: list[dict[str, Any]], settings: GRPOSettings) -> dict[str, Any]:
    """A step's numbers from its episode rows (rows in trl's order: each question's group together)."""
    rewards = [episode_reward(settings.reward, r["em"], r["f1"], r["finish_reason"]) for r in rows]
    groups = [rewards[i:i + settings.group_size] for i in range(0, len(rewards), settings.group_size)]
    n_steps = sum(r["n_steps"] for r in rows)
    return {
        "n_rollouts": len(rows),
        "reward": statistics.fmean(rewards),
        "reward_std": statistics.pstdev(rewards),
        "em": 100 * statistics.fmean(float(r["em"]) for r in rows),
        "f1": 100 * statistics.fmean(r["f1"] for r in rows),
        "finished_pct": 100 * statistics.fmean(r["finish_reason"] == "finished" for r in rows),
        "invalid_action_pct": 100 * sum(r["n_invalid_actions"] for r in rows) / max(n_steps, 1),
        "mean_steps": n_steps / len(rows),
        "groups_with_signal": sum(len(set(g)) > 1 for g in groups),
        "all_failed": max(rewards) <= 0,
    }


def metrics_table(rollout_dir: Path, history: list[dict[str, Any]], settings: GRPOSettings) -> pa.Table:
    """One row per step: the step's rollout file and trl's log of the step (loss, KL, gradient norm, ...)."""
    logged = {int(h["step"]): h for h in history if "loss" in h and "step" in h}
    rows = []
    for step in range(1, settings.steps + 1):
        path = rollout_dir / STEP_FILE.format(step=step)
        table = read_parquet(path, EPISODE_SCHEMA)
        meta = json.loads(table.schema.metadata[PROVENANCE_KEY])
        trl_log = logged.get(step, {})
        rows.append({
            "step": step,
            **rollout_stats(table.to_pylist(), settings),
            **meta["rollout_tokens"],
            "loss": trl_log.get("loss"),
            "kl": trl_log.get("kl"),
            "grad_norm": trl_log.get("grad_norm"),
            "learning_rate": trl_log.get("learning_rate"),
            "seconds": trl_log.get("step_time"),
        })
    return pa.Table.from_pylist(rows, schema=METRICS_SCHEMA)


Z95 = 1.959964


def reward_fifths(steps: list[dict[str, Any]], binary: bool = False) -> dict[str, Any]:
    """The reward curve in two numbers: the mean reward over the first and the last fifth of the steps.

    Each pools its steps' rollouts (a step's mean and spread stand for its rollouts) into a mean
    with a 95% interval: Wilson's score interval when the reward is 0 or 1 (``binary``: EM
    without a penalty; it stays honest at 0 successes, where a normal interval collapses to a
    point), else the normal one. ``difference`` is last minus first, with Newcombe's interval
    from the two Wilson intervals (binary) or Welch's. EM, finished % and the steps whose
    rollouts all failed are given per fifth too.
    """
    n = max(1, len(steps) // 5)
    out: dict[str, Any] = {}
    for name, part in (("first", steps[:n]), ("last", steps[-n:])):
        count = sum(s["n_rollouts"] for s in part)
        mean = sum(s["reward"] * s["n_rollouts"] for s in part) / count
        second = sum((s["reward_std"] ** 2 + s["reward"] ** 2) * s["n_rollouts"] for s in part) / count
        se = math.sqrt(max(second - mean * mean, 0.0) / count)
        ci = _wilson(mean, count) if binary else (mean - Z95 * se, mean + Z95 * se)
        out[name] = {"steps": [part[0]["step"], part[-1]["step"]], "rollouts": count, "mean": round(mean, 4),
                     "ci": [round(ci[0], 4), round(ci[1], 4)], "se": round(se, 4),
                     "em": round(sum(s["em"] * s["n_rollouts"] for s in part) / count, 2),
                     "finished_pct": round(sum(s["finished_pct"] * s["n_rollouts"] for s in part) / count, 2),
                     "steps_all_failed": sum(bool(s["all_failed"]) for s in part)}
    first, last = out["first"], out["last"]
    diff = last["mean"] - first["mean"]
    if binary:  # Newcombe's hybrid score interval
        low = diff - math.hypot(last["mean"] - last["ci"][0], first["ci"][1] - first["mean"])
        high = diff + math.hypot(last["ci"][1] - last["mean"], first["mean"] - first["ci"][0])
    else:
        half = Z95 * math.hypot(first["se"], last["se"])
        low, high = diff - half, diff + half
    out["difference"] = {"mean": round(diff, 4), "ci": [round(low, 4), round(high, 4)]}
    return out


def _wilson(p: float, n: int) -> tuple[float, float]:
    centre = (p + Z95 * Z95 / (2 * n)) / (1 + Z95 * Z95 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95 * Z95 / (4 * n * n)) / (1 + Z95 * Z95 / n)
    return max(centre - half, 0.0), min(centre + half, 1.0)


def _title(start_model: str | Path, rollouts: Rollouts, settings: GRPOSettings) -> str:
    return (f"GRPO of {Path(start_model).name} on {len(rollouts.tasks)} questions: {settings.steps} steps of "
            f"{settings.questions_per_step} x {settings.group_size} rollouts\nlr {settings.learning_rate:g}, "
            f"beta {settings.beta:g}, temperature {settings.temperature:g}, LoRA r={settings.lora.r}, reward "
            f"{settings.reward.metric}" + (f" - {settings.reward.format_penalty:g} unless finished"
                                           if settings.reward.format_penalty else ""))
