"""LoRA / QLoRA finetuning on ReAct trajectories with trl's ``SFTTrainer`` (the article's recipe).

The article (``Finetuning LLMs for ReAct``) trains Mistral-7B with QLoRA through trl's
``SFTTrainer`` and keeps the last three checkpoints; :func:`finetune` does the same with
today's APIs and writes the checkpoints, a per-step loss table (Parquet, with provenance)
and the loss curve. Which checkpoint is merged, and the merge: :mod:`react.training.checkpoints`.

QLoRA runs on a CPU too (bitsandbytes' CPU backend, nf4, compute in float32); trl then
keeps the adapter weights in bfloat16, as it does for any quantized base. The paper
preset's ``paged_adamw_32bit`` needs CUDA: on a CPU override ``optim``.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from react.io import sha256_file, write_parquet
from react.training.callbacks import callbacks, progress_bars_only_on_a_tty
from react.training.checkpoints import RUN_INFO_FILE, checkpoint_losses_from, choose_checkpoint
from react.training.presets import Hyperparameters
from react.training.tokenize import load_training_set

log = logging.getLogger(__name__)

TIMING_FILE = "timing.json"  # written into checkpoints_dir: wall time and throughput, kept out of provenance
LOSS_SCHEMA = pa.schema(
    [
        ("step", pa.int64()),
        ("epoch", pa.float64()),
        ("loss", pa.float64()),
        ("learning_rate", pa.float64()),
        ("grad_norm", pa.float64()),
    ]
)


@dataclass(frozen=True)
class RunFiles:
    """What a finetune run writes (the rule's outputs, ``react.paths`` CHECKPOINTS, LOSS and LOSS_PLOT)."""

    checkpoints: Path  # checkpoint-<step>/ folders, react_finetune.json, timing.json
    loss: Path  # the per-step loss table
    plot: Path  # its curve

    def __post_init__(self) -> None:
        for name in ("checkpoints", "loss", "plot"):
            object.__setattr__(self, name, Path(getattr(self, name)))


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _train_dtype(hp: Hyperparameters, device: str):
    import torch

    if device == "cpu":
        return torch.float32
    return torch.bfloat16 if hp.bf16 else torch.float16 if hp.fp16 else torch.float32


def load_model_for_training(base_model_dir: str | Path, hp: Hyperparameters, device: str):
    """The base model, plain (LoRA) or 4-bit quantized and prepared for k-bit training (QLoRA)."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    if hp.method == "qlora":
        from peft import prepare_model_for_kbit_training

        compute_dtype = torch.float32 if device == "cpu" else getattr(torch, hp.bnb_4bit_compute_dtype)
        quantization = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=hp.bnb_4bit_quant_type,
            bnb_4bit_compute_dtype=compute_dtype,
            bnb_4bit_use_double_quant=hp.bnb_4bit_use_double_quant,
        )
        model = AutoModelForCausalLM.from_pretrained(
            base_model_dir, quantization_config=quantization, device_map={"": device}, dtype=compute_dtype
        )
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=hp.gradient_checkpointing)
    else:
        model = AutoModelForCausalLM.from_pretrained(base_model_dir, dtype=_train_dtype(hp, device))
        model.to(device)
    model.config.use_cache = False
    return model


def make_trainer(base_model_dir: str | Path, dataset, output_dir: str | Path, hp: Hyperparameters, tokenizer,
                 device: str | None = None, sft_args: dict[str, Any] | None = None):
    """The SFTTrainer for a tokenized ``dataset`` (columns input_ids, assistant_masks), checkpoints in ``output_dir``.

    A conversational ``dataset`` (column ``messages``, react.training.chat) is tokenized by trl
    with the tokenizer's (training) chat template, the loss on the assistant turns only.

    Its ``train_dataset`` is trl's prepared dataset: ``labels`` = input_ids with -100
    where ``assistant_masks`` was 0. ``hp.group_by_length`` selects transformers'
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
        r=hp.r, lora_alpha=hp.lora_alpha, lora_dropout=hp.lora_dropout, bias=hp.bias,
        target_modules=list(hp.target_modules), task_type="CAUSAL_LM",
    )
    progress_bars = sys.stderr.isatty()
    on_gpu = device != "cpu"
    if not on_gpu and (hp.bf16 or hp.fp16):
        log.info("no CUDA device: training in float32 (bf16/fp16 apply on a GPU only)")
    settings = dict(
        output_dir=str(output_dir),
        num_train_epochs=hp.num_train_epochs,
        max_steps=hp.max_steps,
        per_device_train_batch_size=hp.per_device_train_batch_size,
        gradient_accumulation_steps=hp.gradient_accumulation_steps,
        optim=hp.optim,
        learning_rate=hp.learning_rate,
        weight_decay=hp.weight_decay,
        max_grad_norm=hp.max_grad_norm,
        warmup_steps=hp.warmup_steps,
        lr_scheduler_type=hp.lr_scheduler_type,
        bf16=hp.bf16 and on_gpu,
        fp16=hp.fp16 and on_gpu,
        use_cpu=not on_gpu,
        gradient_checkpointing=hp.gradient_checkpointing,
        save_strategy="steps",
        save_steps=hp.save_steps,
        save_total_limit=hp.save_total_limit,
        logging_strategy="steps",
        logging_steps=hp.logging_steps,
        max_length=hp.max_length,
        assistant_only_loss="messages" in dataset.column_names,
        packing=False,
        train_sampling_strategy="group_by_length" if hp.group_by_length else "random",
        seed=hp.seed,
        data_seed=hp.seed,
        report_to=[],
        disable_tqdm=not progress_bars,
        dataloader_pin_memory=on_gpu,
    )
    args = SFTConfig(**{**settings, **(sft_args or {})})
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=peft_config
    )
    log_steps, progress = callbacks(progress_bars)
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(log_steps)
    if progress is not None:
        trainer.add_callback(progress)
    return trainer


def finetune(
    base_model_dir: str | Path,
    dataset_jsonl: str | Path,
    hp: Hyperparameters,
    out: RunFiles,
    *,
    threads: int | None = None,
    provenance: dict[str, Any] | None = None,
    form: str = "raw",
) -> dict[str, Any]:
    """Train a LoRA (or QLoRA) adapter on ``dataset_jsonl``; return the run summary.

    ``form``: raw (the article's training text) or chat (conversations in the base model's
    chat template, the loss on the assistant turns: react.training.chat).

    Writes ``out.checkpoints/checkpoint-<step>/`` (the last ``save_total_limit``
    saves; the final step is always saved), ``out.checkpoints/react_finetune.json``
    (the run summary, read by :func:`react.training.checkpoints.merge`), the per-step loss
    table ``out.loss`` (columns step, epoch, loss, learning_rate, grad_norm; provenance
    under the key ``"training"``) and the loss curve ``out.plot``. A stale
    ``out.checkpoints`` is removed first; the two files are written atomically.
    Progress goes to ``logging`` (one line per logged step); tqdm bars only on a terminal.
    """
    with progress_bars_only_on_a_tty():
        return _finetune(Path(base_model_dir), Path(dataset_jsonl), hp, out, threads, provenance, form)


def _finetune(base_model_dir: Path, dataset_jsonl: Path, hp: Hyperparameters, out: RunFiles, threads: int | None,
              provenance: dict[str, Any] | None, form: str) -> dict[str, Any]:
    import torch
    from transformers import AutoTokenizer

    if threads:
        torch.set_num_threads(threads)
    device = _device()
    if device == "cpu" and hp.optim.startswith("paged_"):
        raise ValueError(f"finetuning hyperparameter 'optim': {hp.optim!r} needs a CUDA GPU; on a CPU use e.g. adamw_torch")

    # A rerun starts clean: no checkpoint or loss file of an earlier run survives next to this run's.
    if out.checkpoints.exists():
        log.info("removing stale %s", out.checkpoints)
        shutil.rmtree(out.checkpoints)
    out.loss.unlink(missing_ok=True)
    out.plot.unlink(missing_ok=True)
    out.checkpoints.mkdir(parents=True)

    tokenizer = AutoTokenizer.from_pretrained(base_model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    if form == "chat":
        from react.training.chat import load_chat_training_set, training_chat_template

        # trl marks the assistant's tokens with the training variant; the merged model keeps the original.
        tokenizer.chat_template = training_chat_template(tokenizer, base_model_dir)
        training_set = load_chat_training_set(dataset_jsonl, tokenizer, tokenizer.chat_template, hp.max_length)
    elif form == "raw":
        training_set = load_training_set(dataset_jsonl, tokenizer, hp.max_length, hp.mask_observations)
    else:
        raise ValueError(f"unknown training format {form!r} (expected raw or chat)")

    trainer = make_trainer(base_model_dir, training_set.dataset, out.checkpoints, hp, tokenizer, device)
    if form == "chat":
        log.info("chat form: %d tokens of %d on assistant turns carry the loss", training_set.n_trainable,
                 training_set.n_tokens)
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    log.info("%s on %s: %d trainable parameters", hp.method, device, trainable)

    started = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - started
    final_step = trainer.state.global_step
    if not (out.checkpoints / f"checkpoint-{final_step}").is_dir():
        raise RuntimeError(f"training ended at step {final_step} but {out.checkpoints}/checkpoint-{final_step} was not saved")

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
    tokens_seen = int(seen[-1]) if seen else training_set.n_tokens * hp.num_train_epochs
    n_examples = len(training_set.dataset)
    summary = {
        "base_model": str(base_model_dir),
        "dataset": str(dataset_jsonl),
        "dataset_sha256": sha256_file(dataset_jsonl),
        "hyperparameters": hp.as_dict(),
        "format": form,
        "device": device,
        "n_records": training_set.n_records,
        "n_examples": n_examples,
        "n_truncated": training_set.n_truncated,
        "n_without_trainable_tokens": len(training_set.left_out),
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
    (out.checkpoints / TIMING_FILE).write_text(json.dumps(timing, indent=2, sort_keys=True))
    del trainer
    table = pa.Table.from_pylist(rows, schema=LOSS_SCHEMA)
    full_provenance = {**(provenance or {}), "training": summary}
    kept = checkpoint_losses_from(out.checkpoints, table, hp.save_steps)
    summary["checkpoints"] = [{"step": s, "loss": loss} for s, _, loss in kept]
    (out.checkpoints / RUN_INFO_FILE).write_text(
        json.dumps({**full_provenance, "training": summary}, indent=2, sort_keys=True, default=str)
    )
    write_parquet(table, out.loss, full_provenance)
    _plot(table, kept, out.plot, _run_title(base_model_dir, dataset_jsonl, hp, n_examples, form), hp.save_steps)
    log.info("wrote %s, %s and %d checkpoints in %s (%.1f s, %.0f tokens/s)", out.loss, out.plot, len(kept),
             out.checkpoints, wall, timing["tokens_per_second"] or 0)
    return {**summary, **timing}


def _plot(table: pa.Table, kept: list[tuple[int, Path, float]], png: Path, title: str, save_steps: int) -> None:
    from react.results.plots import KeptCheckpoints, plot_run_loss  # matplotlib: only when drawing

    chosen = choose_checkpoint(kept)[0] if kept else None
    points = zip(table.column("step").to_pylist(), table.column("loss").to_pylist(), strict=True)
    plot_run_loss(list(points), [png], title, KeptCheckpoints([(s, loss) for s, _, loss in kept], chosen, save_steps))


def _run_title(base_model_dir: Path, dataset_jsonl: Path, hp: Hyperparameters, n: int, form: str) -> str:
    masking = ("assistant turns (chat)" if form == "chat" else
               "model-written tokens only" if hp.mask_observations else "all tokens")
    return (
        f"{ {'lora': 'LoRA', 'qlora': 'QLoRA'}[hp.method]} finetuning of {base_model_dir.name} on {dataset_jsonl.stem} ({n} examples)\n"
        f"r={hp.r}, lr={hp.learning_rate:g}, batch {hp.per_device_train_batch_size}"
        f"x{hp.gradient_accumulation_steps}, max_length {hp.max_length}, loss on {masking}"
    )
