"""LoRA / QLoRA finetuning on ReAct trajectories, checkpoint choice and merging (the article's recipe).

The article (``Finetuning LLMs for ReAct``) trains Mistral-7B with QLoRA through trl's
``SFTTrainer``, keeps the last three checkpoints, merges the one with the lowest loss
into the base with ``PeftModel.from_pretrained(base, ckpt).merge_and_unload()`` and
benchmarks the result. This module does the same with today's APIs:

* :data:`PRESETS` holds the article's hyperparameters (``paper``) and a CPU-sized run
  (``cpu``); :func:`resolve_hyperparameters` applies a config's overrides.
* :func:`tokenize_records` tokenizes the training texts itself and marks which tokens
  the model wrote (thought, action and the ``"\\nObservation i:"`` stop marker, see
  :func:`react.agent.trajectory.model_written_spans`). The mask goes to trl as the
  ``assistant_masks`` column: trl's dataset preparation turns it into ``labels`` with
  -100 wherever the mask is 0 (``SFTTrainer._prepare_dataset``, ``build_labels``), so
  instruction, question and observations carry no loss (``mask_observations: true``, the
  ``cpu`` preset). The article trains on every token of the text
  (``SFTTrainer(dataset_text_field='text')``): ``mask_observations: false``, the ``paper`` preset.
* :func:`finetune` trains and writes the checkpoints, a per-step loss table (Parquet,
  with provenance) and a loss-curve PNG.
* :func:`checkpoint_losses` / :func:`pick_checkpoint` score the kept checkpoints and
  pick one; :func:`merge` merges it into the full-precision base.

QLoRA runs on a CPU too (bitsandbytes' CPU backend, nf4, compute in float32); trl then
keeps the adapter weights in bfloat16, as it does for any quantized base. The paper
preset's ``paged_adamw_32bit`` needs CUDA: on a CPU override ``optim``.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import sys
import time
import warnings
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa

from react.agent.trajectory import TrajectoryFormatError, model_written_spans
from react.io import (
    atomic_dir,
    atomic_path,
    iter_jsonl,
    read_parquet,
    read_provenance,
    sha256_file,
    write_parquet,
)
from react.models import write_model_provenance

log = logging.getLogger(__name__)

RUN_INFO_FILE = "react_finetune.json"  # written into checkpoints_dir: what the run was, read back by merge()
TIMING_FILE = "timing.json"  # written into checkpoints_dir: wall time and throughput, kept out of provenance
LOSS_COLUMNS = ("step", "epoch", "loss", "learning_rate", "grad_norm")
LOSS_SCHEMA = pa.schema(
    [
        ("step", pa.int64()),
        ("epoch", pa.float64()),
        ("loss", pa.float64()),
        ("learning_rate", pa.float64()),
        ("grad_norm", pa.float64()),
    ]
)

_LORA = {
    # peft LoraConfig names
    "r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.05,
    "bias": "none",
    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}

PRESETS: dict[str, dict[str, Any]] = {
    # The article's values (its TrainingArguments, LoraConfig, BitsAndBytesConfig and
    # SFTTrainer(max_seq_length=1200, packing=False)), under today's names.
    "paper": {
        "method": "qlora",
        **_LORA,
        "num_train_epochs": 1,
        "max_steps": -1,  # -1: the epochs decide
        "per_device_train_batch_size": 2,
        "gradient_accumulation_steps": 1,
        "optim": "paged_adamw_32bit",
        "learning_rate": 5e-5,
        "weight_decay": 0.0,
        "max_grad_norm": 0.3,
        # With lr_scheduler_type "constant" transformers ignores warmup_steps (only
        # "constant_with_warmup" uses it); the article sets both, so both are kept as written.
        "warmup_steps": 100,
        "lr_scheduler_type": "constant",
        "bf16": True,
        "fp16": False,
        # The article's TrainingArguments left it at its default, off (trl's SFTConfig now defaults to on).
        "gradient_checkpointing": False,
        "save_steps": 25,
        "save_total_limit": 3,
        "logging_steps": 25,
        "max_length": 1200,  # the article's max_seq_length
        "packing": False,
        "group_by_length": False,  # not among the article's arguments: transformers' default, random order
        "bnb_4bit_quant_type": "nf4",
        "bnb_4bit_compute_dtype": "float16",  # on a CPU float32 is used instead
        "bnb_4bit_use_double_quant": False,
        # The article's SFTTrainer(dataset_text_field="text") puts the loss on every token of the text.
        "mask_observations": False,
        "seed": 0,
    },
    # A run that fits a laptop CPU: the same LoRA shape, short sequences, few steps.
    "cpu": {
        "method": "lora",
        **_LORA,
        "num_train_epochs": 1,
        "max_steps": -1,
        # 2 x 2 rather than 4 x 1: the same updates at half the activation memory
        # (a batch of 4 x ~630 tokens peaked at 13.6 GB on SmolLM2-135M).
        "per_device_train_batch_size": 2,
        "gradient_accumulation_steps": 2,
        "optim": "adamw_torch",
        "learning_rate": 2e-4,
        "weight_decay": 0.0,
        "max_grad_norm": 0.3,
        "warmup_steps": 0,
        "lr_scheduler_type": "constant",
        "bf16": False,  # fp32: bf16 is 2-4x slower on CPUs without native bf16 matmul
        "fp16": False,
        "gradient_checkpointing": False,  # faster; costs memory (10 GB at 2 x 1,264 tokens on SmolLM2-135M)
        "save_steps": 8,
        "save_total_limit": 3,
        "logging_steps": 1,
        "max_length": 1024,
        "packing": False,  # benchmarks/train_throughput.py: trl packing was slower here and halves the steps
        # Length-grouped micro-batches: 1.16x the tokens/s, held-out loss within the seed-to-seed spread
        # (BENCHMARKS.md, "Training throughput").
        "group_by_length": True,
        "bnb_4bit_quant_type": "nf4",
        "bnb_4bit_compute_dtype": "float32",
        "bnb_4bit_use_double_quant": False,
        # The loss on what the model writes (thoughts, actions, the stop marker) only: the
        # observations are the environment's, not behaviour to imitate. `false` is the article's.
        "mask_observations": True,
        "seed": 0,
    },
}

_CHOICES = {
    "method": ("lora", "qlora"),
    "bias": ("none", "all", "lora_only"),
    "bnb_4bit_quant_type": ("nf4", "fp4"),
    "bnb_4bit_compute_dtype": ("float32", "float16", "bfloat16"),
}
_POSITIVE_INTS = ("r", "num_train_epochs", "per_device_train_batch_size", "gradient_accumulation_steps",
                  "save_steps", "save_total_limit", "logging_steps", "max_length")  # fmt: skip


def resolve_hyperparameters(preset: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The preset's hyperparameters with ``overrides`` applied (and checked).

    Unknown preset or key -> ValueError naming it and listing the allowed ones.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown finetuning preset {preset!r}; choose one of {sorted(PRESETS)}")
    hp = dict(PRESETS[preset])
    hp["target_modules"] = list(hp["target_modules"])
    unknown = sorted(set(overrides or {}) - set(hp))
    if unknown:
        raise ValueError(
            f"unknown finetuning hyperparameter{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(hp))}"
        )
    hp.update(overrides or {})
    check_hyperparameters(hp)
    return hp


def check_hyperparameters(hp: dict[str, Any]) -> None:
    """Raise ValueError, naming the key, unless ``hp`` is a complete and sensible set."""
    expected = set(PRESETS["cpu"])
    missing, unknown = sorted(expected - set(hp)), sorted(set(hp) - expected)
    if missing or unknown:
        raise ValueError(
            "finetuning hyperparameters must be a complete set (see resolve_hyperparameters): "
            + "; ".join(s for s in (f"missing {missing}" if missing else "", f"unknown {unknown}" if unknown else "") if s)
        )
    for key, allowed in _CHOICES.items():
        if hp[key] not in allowed:
            raise ValueError(f"finetuning hyperparameter {key!r}: {hp[key]!r} is not one of {list(allowed)}")
    for key in _POSITIVE_INTS:
        if isinstance(hp[key], bool) or not isinstance(hp[key], int) or hp[key] < 1:
            raise ValueError(f"finetuning hyperparameter {key!r}: expected a positive integer, got {hp[key]!r}")
    for key in ("learning_rate", "lora_alpha", "max_grad_norm", "lora_dropout", "weight_decay", "warmup_steps"):
        if isinstance(hp[key], bool) or not isinstance(hp[key], int | float) or hp[key] < 0:
            raise ValueError(f"finetuning hyperparameter {key!r}: expected a non-negative number, got {hp[key]!r}")
    if not isinstance(hp["max_steps"], int) or hp["max_steps"] == 0 or hp["max_steps"] < -1:
        raise ValueError(f"finetuning hyperparameter 'max_steps': expected -1 or a positive integer, got {hp['max_steps']!r}")
    if not isinstance(hp["target_modules"], list | tuple) or not hp["target_modules"]:
        raise ValueError("finetuning hyperparameter 'target_modules': expected a non-empty list of module names")
    for key in ("bf16", "fp16", "gradient_checkpointing", "mask_observations", "packing", "group_by_length",
                "bnb_4bit_use_double_quant"):
        if not isinstance(hp[key], bool):
            raise ValueError(f"finetuning hyperparameter {key!r}: expected true or false, got {hp[key]!r}")  # noqa: TRY004
    if hp["bf16"] and hp["fp16"]:
        raise ValueError("finetuning hyperparameters 'bf16' and 'fp16' cannot both be true")
    if hp["packing"]:
        # Packing would glue trajectories together across the loss mask; the article trains unpacked.
        raise ValueError("finetuning hyperparameter 'packing': only false is supported")


# --------------------------------------------------------------------------- tokenizing


def tokenize_records(records: Iterable[dict[str, Any]], tokenizer, max_length: int, mask_observations: bool = True):
    """Tokenize training records into a ``datasets.Dataset`` trl takes as already processed.

    Columns: ``input_ids``, ``assistant_masks`` (1 = the model is trained to predict
    this token: its characters overlap a model-written span; all ones when
    ``mask_observations`` is false; special tokens such as a BOS are 0 when masking),
    ``id`` and ``truncated`` (the record was longer than ``max_length`` tokens and was
    cut, keeping its start). The number of truncated records is logged and is
    ``sum(dataset["truncated"])``. No EOS is appended: the agent stops generation at
    ``"\\nObservation i:"`` and after ``Finish[...]``, never at an end-of-text token.

    A record whose ``text`` does not end with its ``trajectory``, or whose trajectory
    is not well formed, raises ValueError naming its id (the dataset builder filters
    those, so this guards against bugs).
    """
    from datasets import Dataset

    ids, input_ids, masks, truncated = [], [], [], []
    for record in records:
        rid = record.get("id", "?")
        text, trajectory = record.get("text"), record.get("trajectory")
        if not isinstance(text, str) or not isinstance(trajectory, str) or not trajectory:
            raise ValueError(f"training record {rid!r}: needs string fields 'text' and 'trajectory'")
        start = len(text) - len(trajectory)
        if start < 0 or text[start:] != trajectory:
            raise ValueError(f"training record {rid!r}: 'text' does not end with its 'trajectory'")
        try:
            spans = model_written_spans(text, start)
        except TrajectoryFormatError as exc:
            raise ValueError(f"training record {rid!r}: malformed trajectory: {exc}") from exc
        encoding = tokenizer(text, return_offsets_mapping=True)
        tokens, offsets = list(encoding["input_ids"]), encoding["offset_mapping"]
        if mask_observations:
            mask = [int(a < b and any(a < e and b > s for s, e in spans)) for a, b in offsets]
        else:
            mask = [1] * len(tokens)
        cut = len(tokens) > max_length
        ids.append(str(rid))
        input_ids.append(tokens[:max_length])
        masks.append(mask[:max_length])
        truncated.append(cut)
    n_truncated = sum(truncated)
    if n_truncated:
        log.warning("%d of %d training records are longer than %d tokens and were truncated (start kept)",
                    n_truncated, len(ids), max_length)
    return Dataset.from_dict({"id": ids, "input_ids": input_ids, "assistant_masks": masks, "truncated": truncated})


def read_records(dataset_jsonl: str | Path) -> list[dict[str, Any]]:
    records = []
    for line_no, obj in iter_jsonl(dataset_jsonl):
        missing = [k for k in ("id", "text", "trajectory") if k not in obj]
        if missing:
            raise ValueError(f"{dataset_jsonl}:{line_no}: training record lacks {missing}")
        records.append(obj)
    if not records:
        raise ValueError(f"{dataset_jsonl}: no training records")
    return records


# --------------------------------------------------------------------------- training


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _train_dtype(hp: dict[str, Any], device: str):
    import torch

    if device == "cpu":
        return torch.float32
    return torch.bfloat16 if hp["bf16"] else torch.float16 if hp["fp16"] else torch.float32


def load_model_for_training(base_model_dir: str | Path, hp: dict[str, Any], device: str):
    """The base model, plain (LoRA) or 4-bit quantized and prepared for k-bit training (QLoRA)."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    if hp["method"] == "qlora":
        from peft import prepare_model_for_kbit_training

        compute_dtype = torch.float32 if device == "cpu" else getattr(torch, hp["bnb_4bit_compute_dtype"])
        quantization = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=hp["bnb_4bit_quant_type"],
            bnb_4bit_compute_dtype=compute_dtype,
            bnb_4bit_use_double_quant=hp["bnb_4bit_use_double_quant"],
        )
        model = AutoModelForCausalLM.from_pretrained(
            base_model_dir, quantization_config=quantization, device_map={"": device}, dtype=compute_dtype
        )
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=hp["gradient_checkpointing"])
    else:
        model = AutoModelForCausalLM.from_pretrained(base_model_dir, dtype=_train_dtype(hp, device))
        model.to(device)
    model.config.use_cache = False
    return model


def _callbacks(progress_bars: bool):
    from transformers import ProgressCallback, TrainerCallback

    class LogSteps(TrainerCallback):
        """One logging line per logged step; make sure the last step is saved as a checkpoint."""

        def on_train_begin(self, args, state, control, **kwargs):
            log.info("training: %d steps, %d examples per step", state.max_steps,
                     args.per_device_train_batch_size * args.gradient_accumulation_steps)

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= state.max_steps:
                control.should_save = True  # transformers does this too; kept in case it stops doing so

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            if "loss" in logs:
                grad = logs.get("grad_norm")
                log.info(
                    "step %d/%d  epoch %.2f  loss %.4f  lr %.3g  grad_norm %s",
                    state.global_step, state.max_steps, logs.get("epoch", state.epoch or 0.0), logs["loss"],
                    logs.get("learning_rate", float("nan")), f"{grad:.3f}" if grad is not None else "-",
                )
            elif "train_runtime" in logs:
                log.info("training done: %d steps in %.1f s (mean loss %.4f)",
                         state.global_step, logs["train_runtime"], logs.get("train_loss", float("nan")))

    class QuietProgress(ProgressCallback):
        """The tqdm bar without its printed log dictionaries (those go through logging)."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            pass

    return LogSteps(), QuietProgress if progress_bars else None


def make_trainer(base_model_dir: str | Path, dataset, output_dir: str | Path, hp: dict[str, Any], tokenizer,
                 device: str | None = None, sft_args: dict[str, Any] | None = None):
    """The SFTTrainer for a tokenized ``dataset`` (columns input_ids, assistant_masks), checkpoints in ``output_dir``.

    Its ``train_dataset`` is trl's prepared dataset: ``labels`` = input_ids with -100
    where ``assistant_masks`` was 0. ``hp["group_by_length"]`` selects transformers'
    ``train_sampling_strategy="group_by_length"`` (each optimizer step's examples drawn
    from a shuffled window and sorted by length, so micro-batches carry little padding)
    instead of ``"random"``. ``sft_args`` sets further ``SFTConfig`` fields as given
    (benchmarks/train_throughput.py tries packing and padding-free batches with it).
    """
    from peft import LoraConfig
    from transformers import PrinterCallback, ProgressCallback
    from trl import SFTConfig, SFTTrainer

    device = device or _device()
    model = load_model_for_training(base_model_dir, hp, device)
    peft_config = LoraConfig(
        r=hp["r"], lora_alpha=hp["lora_alpha"], lora_dropout=hp["lora_dropout"], bias=hp["bias"],
        target_modules=list(hp["target_modules"]), task_type="CAUSAL_LM",
    )
    progress_bars = sys.stderr.isatty()
    on_gpu = device != "cpu"
    if not on_gpu and (hp["bf16"] or hp["fp16"]):
        log.info("no CUDA device: training in float32 (bf16/fp16 apply on a GPU only)")
    settings = dict(
        output_dir=str(output_dir),
        num_train_epochs=hp["num_train_epochs"],
        max_steps=hp["max_steps"],
        per_device_train_batch_size=hp["per_device_train_batch_size"],
        gradient_accumulation_steps=hp["gradient_accumulation_steps"],
        optim=hp["optim"],
        learning_rate=hp["learning_rate"],
        weight_decay=hp["weight_decay"],
        max_grad_norm=hp["max_grad_norm"],
        warmup_steps=hp["warmup_steps"],
        lr_scheduler_type=hp["lr_scheduler_type"],
        bf16=hp["bf16"] and on_gpu,
        fp16=hp["fp16"] and on_gpu,
        use_cpu=not on_gpu,
        gradient_checkpointing=hp["gradient_checkpointing"],
        save_strategy="steps",
        save_steps=hp["save_steps"],
        save_total_limit=hp["save_total_limit"],
        logging_strategy="steps",
        logging_steps=hp["logging_steps"],
        max_length=hp["max_length"],
        packing=False,
        train_sampling_strategy="group_by_length" if hp["group_by_length"] else "random",
        seed=hp["seed"],
        data_seed=hp["seed"],
        report_to=[],
        disable_tqdm=not progress_bars,
        dataloader_pin_memory=on_gpu,
    )
    args = SFTConfig(**{**settings, **(sft_args or {})})
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=peft_config
    )
    log_steps, progress = _callbacks(progress_bars)
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(log_steps)
    if progress is not None:
        trainer.add_callback(progress)
    return trainer


@contextmanager
def progress_bars_only_on_a_tty():
    """Turn datasets' and transformers' tqdm bars off unless stderr is a terminal (restored afterwards)."""
    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    from transformers.utils import logging as transformers_logging

    if sys.stderr.isatty():
        yield
        return
    datasets_on = not are_progress_bars_disabled()
    transformers_on = transformers_logging.is_progress_bar_enabled()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "cannot disable: HF_DATASETS_DISABLE_PROGRESS_BARS=0 is set"
        if datasets_on:
            disable_progress_bars()
        if transformers_on:
            transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if datasets_on:
                enable_progress_bars()
            if transformers_on:
                transformers_logging.enable_progress_bar()


def finetune(
    base_model_dir: str | Path,
    dataset_jsonl: str | Path,
    checkpoints_dir: str | Path,
    loss_parquet: str | Path,
    loss_png: str | Path,
    hyperparameters: dict[str, Any],
    threads: int | None = None,
    provenance: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train a LoRA (or QLoRA) adapter on ``dataset_jsonl``; return the run summary.

    Writes ``checkpoints_dir/checkpoint-<step>/`` (the last ``save_total_limit``
    saves; the final step is always saved), ``checkpoints_dir/react_finetune.json``
    (the run summary, read by :func:`merge`), the per-step loss table
    ``loss_parquet`` (columns step, epoch, loss, learning_rate, grad_norm; provenance
    under the key ``"training"``) and the loss curve ``loss_png``. A stale
    ``checkpoints_dir`` is removed first; the two files are written atomically.
    Progress goes to ``logging`` (one line per logged step); tqdm bars only on a terminal.
    """
    with progress_bars_only_on_a_tty():
        return _finetune(base_model_dir, dataset_jsonl, checkpoints_dir, loss_parquet, loss_png,
                         hyperparameters, threads, provenance)


def _finetune(base_model_dir, dataset_jsonl, checkpoints_dir, loss_parquet, loss_png, hyperparameters, threads,
              provenance) -> dict[str, Any]:
    import torch
    from transformers import AutoTokenizer

    check_hyperparameters(hyperparameters)
    hp = dict(hyperparameters)
    base_model_dir, dataset_jsonl = Path(base_model_dir), Path(dataset_jsonl)
    checkpoints_dir, loss_parquet, loss_png = Path(checkpoints_dir), Path(loss_parquet), Path(loss_png)
    if threads:
        torch.set_num_threads(threads)
    device = _device()
    if device == "cpu" and hp["optim"].startswith("paged_"):
        raise ValueError(f"finetuning hyperparameter 'optim': {hp['optim']!r} needs a CUDA GPU; on a CPU use e.g. adamw_torch")

    # A rerun starts clean: no checkpoint or loss file of an earlier run survives next to this run's.
    if checkpoints_dir.exists():
        log.info("removing stale %s", checkpoints_dir)
        shutil.rmtree(checkpoints_dir)
    loss_parquet.unlink(missing_ok=True)
    loss_png.unlink(missing_ok=True)
    checkpoints_dir.mkdir(parents=True)

    tokenizer = AutoTokenizer.from_pretrained(base_model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"

    records = read_records(dataset_jsonl)
    dataset = tokenize_records(records, tokenizer, hp["max_length"], hp["mask_observations"])
    n_truncated = int(sum(dataset["truncated"]))
    trainable_counts = [sum(m) for m in dataset["assistant_masks"]]
    empty = [rid for rid, n in zip(dataset["id"], trainable_counts, strict=True) if n == 0]
    if empty:
        # trl would drop them silently; say so, and keep the example count honest.
        log.warning("%d records have no trainable token within max_length=%d and are left out: %s",
                    len(empty), hp["max_length"], ", ".join(empty[:10]))
        dataset = dataset.filter(lambda row: sum(row["assistant_masks"]) > 0)
    if len(dataset) == 0:
        raise ValueError(f"{dataset_jsonl}: no record has a trainable token within max_length={hp['max_length']}")
    n_tokens = sum(len(x) for x in dataset["input_ids"])
    log.info("%d training examples (%d tokens, %d trainable, %d truncated) from %s",
             len(dataset), n_tokens, sum(trainable_counts), n_truncated, dataset_jsonl)
    dataset = dataset.select_columns(["input_ids", "assistant_masks"])

    trainer = make_trainer(base_model_dir, dataset, checkpoints_dir, hp, tokenizer, device)
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    log.info("%s on %s: %d trainable parameters", hp["method"], device, trainable)

    started = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - started
    final_step = trainer.state.global_step
    if not (checkpoints_dir / f"checkpoint-{final_step}").is_dir():
        raise RuntimeError(f"training ended at step {final_step} but {checkpoints_dir}/checkpoint-{final_step} was not saved")

    rows = [
        {
            "step": int(entry["step"]),
            "epoch": float(entry.get("epoch", math.nan)),
            "loss": float(entry["loss"]),
            "learning_rate": float(entry.get("learning_rate", math.nan)),
            "grad_norm": float(entry["grad_norm"]) if entry.get("grad_norm") is not None else None,
        }
        for entry in trainer.state.log_history
        if "loss" in entry and "step" in entry
    ]
    seen = [e["num_tokens"] for e in trainer.state.log_history if "num_tokens" in e]
    tokens_seen = int(seen[-1]) if seen else n_tokens * hp["num_train_epochs"]
    summary = {
        "base_model": str(base_model_dir),
        "dataset": str(dataset_jsonl),
        "dataset_sha256": sha256_file(dataset_jsonl),
        "hyperparameters": hp,
        "device": device,
        "n_records": len(records),
        "n_examples": len(dataset),
        "n_truncated": n_truncated,
        "n_without_trainable_tokens": len(empty),
        "trainable_parameters": int(trainable),
        "steps": int(final_step),
        "tokens_seen": tokens_seen,
    }
    # Timings stay out of provenance, which must be the same for the same inputs.
    timing = {
        "wall_seconds": round(wall, 3),
        "tokens_per_second": round(tokens_seen / wall, 2) if wall > 0 else None,
        "seconds_per_step": round(wall / max(final_step, 1), 3),
    }
    (checkpoints_dir / TIMING_FILE).write_text(json.dumps(timing, indent=2, sort_keys=True))
    del trainer
    table = pa.Table.from_pylist(rows, schema=LOSS_SCHEMA)
    full_provenance = {**(provenance or {}), "training": summary}
    kept = checkpoint_losses_from(checkpoints_dir, table, hp["save_steps"])
    summary["checkpoints"] = [{"step": s, "loss": loss} for s, _, loss in kept]
    (checkpoints_dir / RUN_INFO_FILE).write_text(
        json.dumps({**full_provenance, "training": summary}, indent=2, sort_keys=True, default=str)
    )
    write_parquet(table, loss_parquet, full_provenance)
    plot_losses(table, kept, loss_png, _run_title(base_model_dir, dataset_jsonl, hp, len(dataset)), hp["save_steps"])
    log.info("wrote %s, %s and %d checkpoints in %s (%.1f s, %.0f tokens/s)", loss_parquet, loss_png, len(kept),
             checkpoints_dir, wall, timing["tokens_per_second"] or 0)
    return {**summary, **timing}


def _run_title(base_model_dir: Path, dataset_jsonl: Path, hp: dict[str, Any], n: int) -> str:
    masking = "model-written tokens only" if hp["mask_observations"] else "all tokens"
    return (
        f"{ {'lora': 'LoRA', 'qlora': 'QLoRA'}[hp['method']]} finetuning of {base_model_dir.name} on {dataset_jsonl.stem} ({n} examples)\n"
        f"r={hp['r']}, lr={hp['learning_rate']:g}, batch {hp['per_device_train_batch_size']}"
        f"x{hp['gradient_accumulation_steps']}, max_length {hp['max_length']}, loss on {masking}"
    )


def plot_losses(table: pa.Table, kept: list[tuple[int, Path, float]], out_png: str | Path, title: str,
                save_steps: int | None = None) -> None:
    """Training loss per logged step, the kept checkpoints marked, the one pick_checkpoint takes highlighted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    steps, losses = table.column("step").to_pylist(), table.column("loss").to_pylist()
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    ax.plot(steps, losses, marker="." if len(steps) < 60 else None, lw=1.2, color="tab:blue", label="training loss")
    chosen = _choose(kept) if kept else None
    for step, _, loss in kept:
        ax.axvline(step, color="grey", lw=0.8, ls=":", zorder=0)
        if not math.isnan(loss):
            is_chosen = chosen is not None and step == chosen[0]
            if save_steps:  # the window the checkpoint's loss is the mean of
                ax.hlines(loss, ((step - 1) // save_steps) * save_steps, step, lw=2,
                          color="tab:red" if is_chosen else "tab:orange", alpha=0.6)
            ax.plot([step], [loss], marker="*" if is_chosen else "o", ms=14 if is_chosen else 7,
                    color="tab:red" if is_chosen else "tab:orange", zorder=3)
            ax.annotate(f"ckpt {step}\n{loss:.3f}", (step, loss), textcoords="offset points", xytext=(4, 8),
                        fontsize=8, color="tab:red" if is_chosen else "dimgrey")
    ax.plot([], [], "o", color="tab:orange", label="kept checkpoint: mean loss since the previous save")
    if chosen is not None:
        ax.plot([], [], "*", ms=12, color="tab:red", label=f"chosen for merging: step {chosen[0]}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.margins(x=0.06)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


# --------------------------------------------------------------------------- choosing a checkpoint

_CHECKPOINT = re.compile(r"checkpoint-(\d+)$")


def _kept_checkpoints(checkpoints_dir: Path) -> list[tuple[int, Path]]:
    found = []
    for path in Path(checkpoints_dir).iterdir():
        match = _CHECKPOINT.match(path.name)
        if match and path.is_dir():
            found.append((int(match.group(1)), path))
    return sorted(found)


def checkpoint_losses_from(checkpoints_dir: str | Path, table: pa.Table, save_steps: int) -> list[tuple[int, Path, float]]:
    """Like :func:`checkpoint_losses`, from an in-memory loss table and the run's ``save_steps``."""
    steps, losses = table.column("step").to_pylist(), table.column("loss").to_pylist()
    out = []
    for step, path in _kept_checkpoints(Path(checkpoints_dir)):
        previous_save = ((step - 1) // save_steps) * save_steps  # the save before this one, kept or not
        window = [loss for s, loss in zip(steps, losses, strict=True) if previous_save < s <= step and loss is not None]
        out.append((step, path, sum(window) / len(window) if window else math.nan))
    return out


def checkpoint_losses(checkpoints_dir: str | Path, loss_parquet: str | Path) -> list[tuple[int, Path, float]]:
    """``(step, path, loss)`` of each kept ``checkpoint-<step>`` in ``checkpoints_dir``, by step.

    A checkpoint's loss is the mean of the logged training losses whose step lies in
    ``(previous save step, step]``: the logging window since the save before it,
    whether or not that earlier checkpoint was kept (saves happen every ``save_steps``
    steps and at the last step). Each logged loss is already the mean over its own
    logging interval, so with ``logging_steps == save_steps`` (the article's 25/25)
    this is the single loss logged at the save. NaN when nothing was logged in the
    window. ``save_steps`` comes from the loss file's provenance, else from the
    checkpoint's ``trainer_state.json``.
    """
    table = read_parquet(loss_parquet)
    save_steps = (read_provenance(loss_parquet).get("training") or {}).get("hyperparameters", {}).get("save_steps")
    if save_steps is None:
        for _, path in _kept_checkpoints(Path(checkpoints_dir)):
            state = path / "trainer_state.json"
            if state.is_file():
                save_steps = json.loads(state.read_text()).get("save_steps")
                break
    if not isinstance(save_steps, int) or save_steps < 1:
        raise ValueError(f"{loss_parquet}: cannot tell the run's save_steps (no provenance, no trainer_state.json)")
    return checkpoint_losses_from(checkpoints_dir, table, save_steps)


def _choose(scored: list[tuple[int, Path, float]]) -> tuple[int, Path, float]:
    finite = [c for c in scored if not math.isnan(c[2])]
    if not finite:
        return max(scored, key=lambda c: c[0])
    return min(finite, key=lambda c: (c[2], -c[0]))  # lowest loss; ties -> the later step


def pick_checkpoint(checkpoints_dir: str | Path, loss_parquet: str | Path) -> tuple[int, Path, float]:
    """The kept checkpoint with the lowest window loss (see :func:`checkpoint_losses`); ties -> the later step.

    Checkpoints with no logged loss in their window are passed over (the last one is
    taken only if none has a loss).
    """
    scored = checkpoint_losses(checkpoints_dir, loss_parquet)
    if not scored:
        raise ValueError(f"{checkpoints_dir}: no checkpoint-<step> folders")
    return _choose(scored)


# --------------------------------------------------------------------------- merging


def merge(
    base_model_dir: str | Path,
    checkpoint_dir: str | Path,
    out_dir: str | Path,
    provenance: dict[str, Any] | None = None,
    dtype: str = "float32",
) -> None:
    """Merge the LoRA adapter in ``checkpoint_dir`` into the full-precision base; write ``out_dir``.

    The article's ``PeftModel.from_pretrained(base, ckpt).merge_and_unload()``, on the
    base reloaded unquantized in ``dtype`` (float32 by default; a QLoRA adapter is
    merged into the unquantized weights, as in the article). Safetensors, tokenizer and
    ``react_model.json`` (base model, checkpoint step and loss, and the run summary the
    training wrote: hyperparameters, dataset sha256, ...; plus ``provenance``) go into a
    temporary folder next to ``out_dir`` that is renamed into place.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base_model_dir, checkpoint_dir, out_dir = Path(base_model_dir), Path(checkpoint_dir), Path(out_dir)
    match = _CHECKPOINT.match(checkpoint_dir.name)
    if not (checkpoint_dir / "adapter_config.json").is_file():
        raise ValueError(f"{checkpoint_dir}: not a LoRA checkpoint (no adapter_config.json)")
    step = int(match.group(1)) if match else None
    run_info_path = checkpoint_dir.parent / RUN_INFO_FILE
    run_info = json.loads(run_info_path.read_text()) if run_info_path.is_file() else {}
    training = run_info.get("training", {})
    loss = next((c["loss"] for c in training.get("checkpoints", []) if c["step"] == step), None)

    with atomic_dir(out_dir) as tmp:
        with progress_bars_only_on_a_tty():
            base = AutoModelForCausalLM.from_pretrained(base_model_dir, dtype=getattr(torch, dtype))
            tokenizer = AutoTokenizer.from_pretrained(base_model_dir)
            merged = PeftModel.from_pretrained(base, checkpoint_dir).merge_and_unload()
            merged.config.use_cache = True
            merged.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
        write_model_provenance(
            tmp,
            {
                **(provenance or {}),
                "base_model": str(base_model_dir),
                "checkpoint": {"path": str(checkpoint_dir), "step": step, "loss": loss},
                "merge_dtype": dtype,
                "dataset_sha256": training.get("dataset_sha256"),
                "hyperparameters": training.get("hyperparameters"),
                "training": training,
                "finetune_provenance": {k: v for k, v in run_info.items() if k != "training"},
            },
        )
    log.info("merged %s (step %s, loss %s) into %s -> %s", checkpoint_dir.name, step, loss, base_model_dir, out_dir)
