"""HotPotQA questions from the bundled sample, the official files or Hugging Face, as one table.

Every source is converted to rows of :data:`react.schemas.SPLIT_SCHEMA`. A row that
does not have the expected shape is an error naming the file, the line (or item)
and the key: a bad row is never skipped, because a silently smaller question set
changes the benchmark.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

import react.download
from react.config.validate import bundled_file
from react.io import DataFileError, iter_jsonl, sha256_file, write_parquet
from react.schemas import SPLIT_SCHEMA

# The official distractor files. The hashes are as published by a third-party
# download script; they are still to be confirmed on the first real download
# (a mismatch fails with both hashes in the message).
OFFICIAL_FILES: dict[str, dict[str, Any]] = {
    "dev": {
        "url": "http://curtis.ml.cmu.edu/datasets/hotpot/hotpot_dev_distractor_v1.json",
        "sha256": "4e9ecb5c8d3b719f624d66b60f8d56bf227f03914f5f0753d6fa1b359d7104ea",
        "population": 7405,
    },
    "train": {
        "url": "http://curtis.ml.cmu.edu/datasets/hotpot/hotpot_train_v1.1.json",
        "sha256": "26650cf50234ef5fb2e664ed70bbecdfd87815e6bffc257e068efea5cf7cd316",
        "population": 90447,
    },
}

# Number of questions in each official split: the range the ReAct protocol shuffles.
POPULATION: dict[str, int] = {split: f["population"] for split, f in OFFICIAL_FILES.items()}

Row = dict[str, Any]
log = logging.getLogger(__name__)


# --- validation helpers: each names the place (`where`) and the key -------------------


def _require(obj: dict, key: str, where: str) -> Any:
    if key not in obj:
        raise DataFileError(f"{where}: missing key {key!r}")
    return obj[key]


def _string(obj: dict, key: str, where: str, required: bool = True) -> str | None:
    value = _require(obj, key, where) if required else obj.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise DataFileError(f"{where}: key {key!r} should be a string, got {type(value).__name__}")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(s, str) for s in value)


def _pairs(value: Any, key: str, where: str) -> list:
    if not isinstance(value, list) or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in value):
        raise DataFileError(f"{where}: key {key!r} should be a list of [title, ...] pairs")
    return value


def _pair_dicts(value: Any, key: str, where: str, second: str, valid: Any, shape: str) -> list[dict]:
    """[[title, x], ...] -> [{title, <second>: x}, ...], each x checked by ``valid``."""
    out = []
    for k, (title, x) in enumerate(_pairs(value, key, where)):
        if not isinstance(title, str) or not valid(x):
            raise DataFileError(f"{where}: key {key!r} item {k} should be {shape}")
        out.append({"title": title, second: x})
    return out


def _context(value: Any, where: str) -> list[dict]:
    return _pair_dicts(value, "context", where, "sentences", _is_str_list, "[title, [sentence, ...]]")


def _supporting_facts(value: Any, where: str) -> list[dict]:
    return _pair_dicts(value, "supporting_facts", where, "sent_id", _is_int, "[title, sent_id]")


def _columns_to_pairs(obj: dict, key: str, columns: tuple[str, str], where: str) -> list[list]:
    """Hugging Face stores lists of pairs as a dict of equal-length columns; zip them back."""
    value = _require(obj, key, where)
    if not isinstance(value, dict) or not all(isinstance(value.get(c), list) for c in columns):
        raise DataFileError(f"{where}: key {key!r} should be a dict of lists {list(columns)}")
    first, second = (value[c] for c in columns)
    if len(first) != len(second):
        raise DataFileError(
            f"{where}: key {key!r} has {len(first)} {columns[0]} but {len(second)} {columns[1]}"
        )
    return [list(pair) for pair in zip(first, second)]


# --- one item -> one row ----------------------------------------------------------------


def official_row(obj: Any, where: str, index: int | None = None, source: str | None = None) -> Row:
    """Convert an item of the official format (also the bundled JSONL lines) to a row.

    The bundled lines add ``dev_index`` (used as ``index``), and the reconstructed
    ones replace ``supporting_facts`` by ``supporting_titles`` (sent_id unknown).
    ReAct's own question list (``dev_questions_all.jsonl.gz``, from its
    ``hotpot_dev_v1_simplified.json``) has neither ``_id`` nor ``context``: such a
    line gets the id ``dev-{dev_index}`` and no context (it needs the live Wikipedia).
    """
    if not isinstance(obj, dict):
        raise DataFileError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if "dev_index" in obj:
        index = obj["dev_index"]
        if not _is_int(index) or index < 0:
            raise DataFileError(f"{where}: key 'dev_index' should be a non-negative integer")
    facts = obj.get("supporting_facts")
    if facts is not None:
        facts = _supporting_facts(facts, where)
    elif obj.get("supporting_titles") is not None:
        if not _is_str_list(obj["supporting_titles"]):
            raise DataFileError(f"{where}: key 'supporting_titles' should be a list of strings")
        facts = [{"title": title, "sent_id": None} for title in obj["supporting_titles"]]
    simplified = "dev_index" in obj and "_id" not in obj and "context" not in obj
    return _row(obj, where, f"dev-{index}" if simplified else _string(obj, "_id", where), index, facts,
                lambda: None if simplified else _context(_require(obj, "context", where), where), source)


def _row(obj: dict, where: str, id_: str, index: int | None, facts: list[dict] | None,
         context: Callable[[], list[dict] | None], source: str | None) -> Row:
    """A split row (SPLIT_SCHEMA): the parts both formats spell the same way, read from ``obj``
    (``context`` last, so that a record missing several keys is named by the same one as ever)."""
    return {
        "id": id_,
        "index": index,
        "question": _string(obj, "question", where),
        "answer": _string(obj, "answer", where),
        "type": _string(obj, "type", where, required=False),
        "level": _string(obj, "level", where, required=False),
        "supporting_facts": facts,
        "context": context(),
        "source": source,
    }


def huggingface_row(obj: Any, where: str, index: int, source: str) -> Row:
    """Convert a row of the Hugging Face ``hotpot_qa`` distractor format."""
    if not isinstance(obj, dict):
        raise DataFileError(f"{where}: expected a record, got {type(obj).__name__}")
    facts = None
    if obj.get("supporting_facts") is not None:
        pairs = _columns_to_pairs(obj, "supporting_facts", ("title", "sent_id"), where)
        facts = _supporting_facts(pairs, where)
    return _row(obj, where, _string(obj, "id", where), index, facts,
                lambda: _context(_columns_to_pairs(obj, "context", ("title", "sentences"), where), where), source)


def collect_rows(located: Iterable[tuple[str, Row]]) -> list[Row]:
    """The rows of one split, failing on an id or index seen twice (naming both places)."""
    rows: list[Row] = []
    seen: dict[tuple[str, Any], str] = {}
    for where, row in located:
        for key in ("id", "index"):
            if row[key] is None:
                continue
            first = seen.setdefault((key, row[key]), where)
            if first != where:
                raise DataFileError(f"{where}: duplicate {key} {row[key]!r} (also at {first})")
        rows.append(row)
    return rows


# --- loaders ----------------------------------------------------------------------------


def load_jsonl_files(paths: Sequence[str | Path]) -> list[Row]:
    """Rows of the bundled JSONL(.gz) files, concatenated; ``source`` is the file name."""

    def located():
        for path in map(Path, paths):
            for line_no, obj in iter_jsonl(path):
                where = f"{path}:{line_no}"
                yield where, official_row(obj, where, source=path.name)

    return collect_rows(located())


def load_official_json(path: str | Path) -> list[Row]:
    """Rows of an official HotPotQA JSON list file; ``index`` is the position in the list."""
    path = Path(path)
    if not path.exists():
        raise DataFileError(f"{path}: file not found")
    try:
        # The train file is 540 MB; json.load holds it all (a few GB), which is acceptable here.
        with open(path, "rb") as fh:
            items = json.load(fh)
    except json.JSONDecodeError as exc:
        raise DataFileError(
            f"{path}: invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}, char {exc.pos})"
        ) from exc
    except UnicodeDecodeError as exc:
        raise DataFileError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if not isinstance(items, list):
        raise DataFileError(f"{path}: expected a JSON list of questions, got {type(items).__name__}")
    return collect_rows(
        (f"{path}: item {i}", official_row(obj, f"{path}: item {i}", index=i, source=path.name))
        for i, obj in enumerate(items)
    )


def download(url: str, dest: str | Path, sha256: str, timeout: float = react.download.DOWNLOAD_TIMEOUT_S) -> Path:
    """Download ``url`` to ``dest`` atomically and check its sha256; a no-op if ``dest`` is already right."""
    react.download.download(url, dest, {"sha256": sha256}, timeout=timeout)
    return Path(dest)


def _dataset_id(name: str, config: str | None, split: str) -> str:
    return ":".join(part for part in (name, config, split) if part)


def open_huggingface(name: str, config: str | None, split: str):
    """``datasets.load_dataset(name, config, split=split)``, with errors naming the dataset."""
    import datasets  # imported here: it is slow to import and only this source needs it

    try:
        return datasets.load_dataset(name, config, split=split)
    except Exception as exc:  # datasets raises many unrelated types (offline, not found, bad config)
        dataset_id = _dataset_id(name, config, split)
        message = f"Hugging Face dataset {dataset_id}: cannot load ({type(exc).__name__}: {exc})"
        raise DataFileError(message) from exc


def huggingface_rows(dataset: Iterable[dict], dataset_id: str) -> list[Row]:
    """Rows of a Hugging Face split; ``index`` is the row position (= the official file's)."""
    return collect_rows(
        (f"{dataset_id} row {i}", huggingface_row(obj, f"{dataset_id} row {i}", index=i, source=dataset_id))
        for i, obj in enumerate(dataset)
    )


def load_huggingface(name: str, config: str | None, split: str) -> list[Row]:
    return huggingface_rows(open_huggingface(name, config, split), _dataset_id(name, config, split))


# --- the split file ---------------------------------------------------------------------


def rows_to_table(rows: Sequence[Row]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=SPLIT_SCHEMA)


def _file_record(path: Path) -> dict[str, str]:
    return {"file": path.name, "sha256": sha256_file(path)}


def _from_bundled(spec: dict) -> tuple[list[Row], dict]:
    paths = [bundled_file(p) for p in spec.get("files") or []]
    if not paths:
        raise ValueError("bundled source: 'files' lists no JSONL files")
    rows = load_jsonl_files(paths)
    return rows, {"files": [_file_record(p) for p in paths]}


def _from_official(spec: dict, split: str, download_dir: str | Path) -> tuple[list[Row], dict]:
    defaults = OFFICIAL_FILES.get(split, {})
    url, sha256 = spec.get("url") or defaults.get("url"), spec.get("sha256") or defaults.get("sha256")
    if not url or not sha256:
        raise ValueError(f"official source for split {split!r}: 'url' and 'sha256' are required")
    local = Path(spec["file"]) if spec.get("file") else None
    if local is not None and local.exists():
        react.download.check_file(local, {"sha256": sha256})
        path = local
    else:
        path = download(url, Path(download_dir) / react.download.url_file_name(url), sha256)
    rows = load_official_json(path)
    return rows, {"url": url, "files": [{"file": path.name, "sha256": sha256}]}


def _from_huggingface(spec: dict) -> tuple[list[Row], dict]:
    name, config, hf_split = spec["name"], spec.get("config"), spec["split"]
    dataset = open_huggingface(name, config, hf_split)
    dataset_id = _dataset_id(name, config, hf_split)
    # _fingerprint is private but is what datasets itself uses to identify the data.
    return huggingface_rows(dataset, dataset_id), {
        "dataset": dataset_id,
        "fingerprint": getattr(dataset, "_fingerprint", None),
    }


def _row_order(row: Row) -> tuple:
    return (row["index"] is None, row["index"] or 0, row["id"])


def prepare_split(
    spec: dict, split: str, out_path: str | Path, provenance: dict, download_dir: str | Path
) -> pa.Table:
    """Build ``out_path`` (one row per question, sorted by index then id) from a config entry.

    ``spec["source"]`` is ``bundled`` (``files``), ``official`` (``url``, ``sha256``,
    optional local ``file``) or ``huggingface`` (``name``, ``config``, ``split``).
    """
    source = spec.get("source")
    if source == "bundled":
        rows, inputs = _from_bundled(spec)
    elif source == "official":
        rows, inputs = _from_official(spec, split, download_dir)
    elif source == "huggingface":
        rows, inputs = _from_huggingface(spec)
    else:
        raise ValueError(
            f"split {split!r}: unknown source {source!r} (expected bundled, official or huggingface)"
        )
    if not rows:
        raise DataFileError(f"split {split!r}: the {source} source has no questions ({inputs})")
    table = rows_to_table(sorted(rows, key=_row_order))
    write_parquet(
        table, out_path, {**provenance, "split": split, "source": source, "inputs": inputs, "rows": len(rows)}
    )
    log.info("split %s: %d questions from %s (%s) -> %s", split, len(rows), source, inputs, out_path)
    return table


# --- the question sample ----------------------------------------------------------------


def sample_questions(
    table_or_rows: pa.Table | Sequence[Row],
    n: int | None,
    seed: int = 233,
    population: int | None = None,
    split: str = "this split",
) -> list[int]:
    """Row positions of the question sample, in sample order.

    ReAct's protocol is ``idxs = list(range(7405)); random.Random(233).shuffle(idxs); idxs[:500]``.
    It is applied to the questions available: shuffle ``range(population)`` and keep the
    indices present. Rows without an index (e.g. the bundled train sample) fall back to
    shuffling the rows sorted by id. ``n`` None or 0 means all, in protocol order.
    """
    if isinstance(table_or_rows, pa.Table):
        ids, indices = table_or_rows.column("id").to_pylist(), table_or_rows.column("index").to_pylist()
    else:
        ids, indices = [r["id"] for r in table_or_rows], [r["index"] for r in table_or_rows]
    available = len(ids)
    if n is not None and n < 0:
        raise ValueError(f"question sample size must be positive or 0/None for all, got {n}")
    n = n or available
    if n > available:
        raise ValueError(
            f"question sample of {n} is larger than the {available} questions available in {split}"
        )

    if None in indices:
        order = sorted(range(available), key=ids.__getitem__)
        random.Random(seed).shuffle(order)
        return order[:n]

    if population is None:
        raise ValueError(f"{split}: population is needed to reproduce the protocol order of its indices")
    if available and max(indices) >= population:
        raise ValueError(f"{split}: index {max(indices)} is outside the population of {population} questions")
    position = {index: pos for pos, index in enumerate(indices)}
    shuffled = list(range(population))
    random.Random(seed).shuffle(shuffled)
    return [position[i] for i in shuffled if i in position][:n]
