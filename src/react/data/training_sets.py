"""The finetuning set: correct, well-formed ReAct trajectories as training text, with a manifest.

Episode rows (react.schemas.EPISODE_SCHEMA) from one or more named sources pass a fixed
chain of filters, each counted overall and per source in the manifest:

    loaded -> finished -> correct -> no_invalid_actions -> well_formed -> deduplicated
           -> [leakage guard] -> fraction -> max_examples

The leakage guard runs before sampling so that sampling can never hide a leak: any
example whose id or normalised question is in the evaluation split is an error.
``fraction`` and ``max_examples`` take a prefix of one seeded shuffle of the examples in
a stable order, so a smaller set is always a subset of a larger one with the same seed
(the article's "half vs full" comparison) and the result does not depend on input order.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from react.agent.metrics import normalize_answer
from react.agent.protocol import question_line
from react.agent.trajectory import TrajectoryFormatError, parse_trajectory, training_text
from react.io import atomic_path, read_parquet, read_text, sha256_file
from react.schemas import EPISODE_SCHEMA, SPLIT_SCHEMA

Row = dict[str, Any]
log = logging.getLogger(__name__)
N_SHOWN = 5  # overlapping examples named in a leakage error


def split_trajectory(row: Row) -> str:
    """The trajectory from ``Thought 1:`` on; raise TrajectoryFormatError unless it parses.

    The episode's ``trajectory`` column starts with the question line the agent wrote:
    ``Question: <question>`` as the data has it (ReAct's prompt) or stripped (the
    training format); it must match the row's question.
    """
    text = row["trajectory"]
    for exact in (True, False):
        head = question_line(row["question"], exact)
        if text.startswith(head):
            body = text[len(head):]
            parse_trajectory(body)
            return body
    raise TrajectoryFormatError("does not start with the line 'Question: <question>'")


def reason_key(message: str) -> str:
    """A format error message without its specifics, for counting: "step N: invalid action '…'"."""
    message = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", message)
    return re.sub(r"\d+", "N", message)


def _well_formed(row: Row, reasons: Counter) -> bool:
    try:
        row["_body"] = split_trajectory(row)
    except TrajectoryFormatError as exc:
        reasons[reason_key(str(exc))] += 1
        return False
    return True


def _order(row: Row) -> tuple:
    """A stable order that does not depend on input order."""
    return (row["id"], row["sample"], row["source"], row["trajectory"])


def _dedup(rows: list[Row]) -> list[Row]:
    seen, kept = set(), []
    for row in sorted(rows, key=_order):
        key = (normalize_answer(row["question"]), row["_body"])
        if key not in seen:
            seen.add(key)
            kept.append(row)
    return kept


def check_leakage(rows: Sequence[Row], eval_split_path: str | Path, dataset: str) -> None:
    """Raise ValueError if any row's id or normalised question is in the evaluation split."""
    split = read_parquet(eval_split_path, SPLIT_SCHEMA)
    ids = set(split.column("id").to_pylist())
    questions = {normalize_answer(q) for q in split.column("question").to_pylist()}
    leaks = [r for r in rows if r["id"] in ids or normalize_answer(r["question"]) in questions]
    if leaks:
        shown = "; ".join(f"{r['id']} ({r['question'][:80]!r})" for r in leaks[:N_SHOWN])
        raise ValueError(
            f"dataset {dataset!r}: {len(leaks)} training examples overlap the evaluation split "
            f"{eval_split_path} by id or normalised question: {shown}"
            + (" ..." if len(leaks) > N_SHOWN else "")
        )


def build_dataset(
    sources: Sequence[tuple[str, Sequence[str | Path]]],
    instruction_path: str | Path,
    eval_split_path: str | Path,
    out_jsonl: str | Path,
    out_manifest: str | Path,
    fraction: float = 1.0,
    max_examples: int | None = None,
    seed: int = 0,
    name: str | None = None,
) -> dict[str, Any]:
    """Write the finetuning JSONL and its manifest; return the manifest.

    ``sources``: (source name, episode Parquet files). ``name`` defaults to the JSONL's stem.
    Each JSONL line: id, question, answer, trajectory (from ``Thought 1:``), text (the
    article's training text: instruction, question, trajectory) and source.
    """
    name = name or Path(out_jsonl).stem
    if not 0 < fraction <= 1:
        raise ValueError(f"dataset {name!r}: fraction must be in (0, 1], got {fraction}")
    if max_examples is not None and max_examples < 1:
        raise ValueError(f"dataset {name!r}: max_examples must be at least 1 or None, got {max_examples}")
    names = [source for source, _ in sources]
    if len(set(names)) != len(names):
        raise ValueError(f"dataset {name!r}: a source name is given twice: {names}")

    rows: list[Row] = []
    for source, paths in sources:
        for path in paths:
            rows += [{**r, "source": source} for r in read_parquet(path, EPISODE_SCHEMA).to_pylist()]

    filters: list[dict[str, Any]] = []
    dropped = {"finished": Counter(), "well_formed": Counter()}

    def apply(filter_name: str, remaining: list[Row]) -> None:
        nonlocal rows
        before, rows = len(rows), remaining
        by_source = Counter(r["source"] for r in rows)
        filters.append({"filter": filter_name, "remaining": len(rows),
                        "by_source": {s: by_source[s] for s in sorted(names)}})
        log.info("dataset %s: %-18s %6d remaining (%s)", name, filter_name, len(rows),
                 ", ".join(f"{s}: {by_source[s]}" for s in sorted(names)))
        if not rows:
            what = f"removed all {before} remaining episodes" if before else "found no episodes"
            given = ", ".join(f"{s}: {len(p)} files" for s, p in sources)
            raise ValueError(f"dataset {name!r} is empty: filter {filter_name!r} {what} (sources: {given})")

    def finished(row: Row) -> bool:
        if row["finish_reason"] != "finished":
            dropped["finished"][row["finish_reason"]] += 1
            return False
        return True

    apply("loaded", rows)
    apply("finished", [r for r in rows if finished(r)])
    apply("correct", [r for r in rows if r["em"]])
    apply("no_invalid_actions", [r for r in rows if r["n_invalid_actions"] == 0
                                 and all(s["action_type"] != "invalid" for s in r["steps"])])
    apply("well_formed", [r for r in rows if _well_formed(r, dropped["well_formed"])])
    apply("deduplicated", _dedup(rows))
    check_leakage(rows, eval_split_path, name)  # before sampling, so that sampling cannot hide a leak

    order = sorted(rows, key=_order)
    random.Random(seed).shuffle(order)
    apply("fraction", order[: round(fraction * len(order))])
    apply("max_examples", rows[:max_examples])

    instruction = read_text(instruction_path).rstrip("\n")
    examples = [
        {"id": r["id"], "question": r["question"], "answer": r["answer"], "trajectory": r["_body"],
         "text": training_text(instruction, r["question"], r["_body"]), "source": r["source"]}
        for r in sorted(rows, key=_order)
    ]
    with atomic_path(out_jsonl) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(example, ensure_ascii=False) + "\n" for example in examples)

    manifest = {
        "dataset": name,
        "sources": [
            {"name": source, "files": sorted(({"file": Path(p).name, "sha256": sha256_file(p)} for p in paths),
                                              key=lambda f: (f["file"], f["sha256"]))}
            for source, paths in sorted(sources, key=lambda s: s[0])
        ],
        "instruction": _file_record(instruction_path),
        "eval_split": _file_record(eval_split_path),
        "filters": filters,
        "dropped_reasons": {k: dict(sorted(v.items())) for k, v in dropped.items()},
        "fraction": fraction,
        "max_examples": max_examples,
        "seed": seed,
        "n_examples": len(examples),
        "output": _file_record(out_jsonl),
    }
    with atomic_path(out_manifest) as tmp:
        tmp.write_text(json.dumps(manifest, sort_keys=True, indent=2) + "\n", encoding="utf-8")
    return manifest


def _file_record(path: str | Path) -> dict[str, str]:
    return {"file": Path(path).name, "sha256": sha256_file(path)}
