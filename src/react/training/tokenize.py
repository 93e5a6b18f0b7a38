"""The training set: JSONL records tokenized, with the loss on the tokens the model wrote.

:func:`tokenize_records` marks which tokens the model wrote (thought, action and the
``"\\nObservation i:"`` stop marker, the spans of :class:`react.agent.trajectory.Step`).
The mask goes to trl as the ``assistant_masks`` column: trl's dataset preparation turns it
into ``labels`` with -100 wherever the mask is 0 (``SFTTrainer._prepare_dataset``,
``build_labels``), so instruction, question and observations carry no loss
(``mask_observations: true``, the ``cpu`` preset). The article trains on every token of the
text (``SFTTrainer(dataset_text_field='text')``): ``mask_observations: false``, the ``paper`` preset.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from react.agent.trajectory import Step, TrajectoryFormatError, parse_trajectory
from react.io import iter_jsonl

log = logging.getLogger(__name__)


def read_records(dataset_jsonl: str | Path) -> list[dict[str, Any]]:
    """The records of a training set (results/datasets/<name>.jsonl); each needs id, text and trajectory."""
    records = []
    for line_no, obj in iter_jsonl(dataset_jsonl):
        missing = [k for k in ("id", "text", "trajectory") if k not in obj]
        if missing:
            raise ValueError(f"{dataset_jsonl}:{line_no}: training record lacks {missing}")
        records.append(obj)
    if not records:
        raise ValueError(f"{dataset_jsonl}: no training records")
    return records


def record_trajectory(record: dict[str, Any]) -> tuple[int, list[Step]]:
    """Where a record's trajectory starts in its ``text``, and its steps; ValueError naming the record."""
    rid = record.get("id", "?")
    text, trajectory = record.get("text"), record.get("trajectory")
    if not isinstance(text, str) or not isinstance(trajectory, str) or not trajectory:
        raise ValueError(f"training record {rid!r}: needs string fields 'text' and 'trajectory'")
    start = len(text) - len(trajectory)
    if start < 0 or text[start:] != trajectory:
        raise ValueError(f"training record {rid!r}: 'text' does not end with its 'trajectory'")
    try:
        return start, parse_trajectory(trajectory)
    except TrajectoryFormatError as exc:
        raise ValueError(f"training record {rid!r}: malformed trajectory: {exc}") from exc


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
        rid, text = record.get("id", "?"), record.get("text")
        start, steps = record_trajectory(record)
        spans = [(start + a, start + b) for a, b in (step.written for step in steps)]
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


@dataclass(frozen=True)
class TrainingSet:
    """What the trainer gets (``dataset``: columns input_ids and assistant_masks) and the counts provenance records."""

    dataset: Any  # datasets.Dataset
    n_records: int
    n_tokens: int  # of the examples kept
    n_trainable: int  # trainable tokens of every record, kept or not
    n_truncated: int
    left_out: tuple[str, ...]  # ids of records without a trainable token within max_length


def load_training_set(dataset_jsonl: str | Path, tokenizer, max_length: int, mask_observations: bool) -> TrainingSet:
    """Read and tokenize ``dataset_jsonl``; records without a trainable token are left out (and logged)."""
    records = read_records(dataset_jsonl)
    dataset = tokenize_records(records, tokenizer, max_length, mask_observations)
    n_truncated = int(sum(dataset["truncated"]))
    trainable_counts = [sum(m) for m in dataset["assistant_masks"]]
    empty = [rid for rid, n in zip(dataset["id"], trainable_counts, strict=True) if n == 0]
    if empty:
        # trl would drop them silently; say so, and keep the example count honest.
        log.warning("%d records have no trainable token within max_length=%d and are left out: %s",
                    len(empty), max_length, ", ".join(empty[:10]))
        dataset = dataset.filter(lambda row: sum(row["assistant_masks"]) > 0)
    if len(dataset) == 0:
        raise ValueError(f"{dataset_jsonl}: no record has a trainable token within max_length={max_length}")
    n_tokens = sum(len(x) for x in dataset["input_ids"])
    log.info("%d training examples (%d tokens, %d trainable, %d truncated) from %s",
             len(dataset), n_tokens, sum(trainable_counts), n_truncated, dataset_jsonl)
    return TrainingSet(dataset.select_columns(["input_ids", "assistant_masks"]), len(records), n_tokens,
                       sum(trainable_counts), n_truncated, tuple(empty))
