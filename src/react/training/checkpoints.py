"""The kept checkpoints of a finetune run: their losses, the one to merge, and merging it (the article's recipe).

The article keeps the last three checkpoints, merges the one with the lowest loss into the
base with ``PeftModel.from_pretrained(base, ckpt).merge_and_unload()`` and benchmarks the result.
"""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path
from typing import Any

import pyarrow as pa

from react.io import atomic_dir, read_parquet, read_provenance
from react.models import write_model_provenance
from react.training.callbacks import progress_bars_only_on_a_tty

log = logging.getLogger(__name__)

RUN_INFO_FILE = "react_finetune.json"  # written into checkpoints_dir: what the run was, read back by merge()
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


def choose_checkpoint(scored: list[tuple[int, Path, float]]) -> tuple[int, Path, float]:
    """Of scored checkpoints, the lowest loss (ties -> the later step); the last one if none has a loss."""
    finite = [c for c in scored if not math.isnan(c[2])]
    if not finite:
        return max(scored, key=lambda c: c[0])
    return min(finite, key=lambda c: (c[2], -c[0]))


def pick_checkpoint(checkpoints_dir: str | Path, loss_parquet: str | Path) -> tuple[int, Path, float]:
    """The kept checkpoint with the lowest window loss (see :func:`checkpoint_losses`); ties -> the later step.

    Checkpoints with no logged loss in their window are passed over (the last one is
    taken only if none has a loss).
    """
    scored = checkpoint_losses(checkpoints_dir, loss_parquet)
    if not scored:
        raise ValueError(f"{checkpoints_dir}: no checkpoint-<step> folders")
    return choose_checkpoint(scored)


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
