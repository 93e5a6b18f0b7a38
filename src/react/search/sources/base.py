"""What every corpus source shares: rows, passages cut into sentences, the file entries and the writer.

A source yields rows ``(title, sentences)`` in its own order; :func:`write_corpus`
streams them into the corpus Parquet file (react.search.corpus) in batches, so no
source is ever held in memory whole. Rows stay in source order; none is dropped. A
page whose text is empty is kept: the title exists, and a Search for it shows the
empty page as ReAct shows one.

A passage string is split by :func:`split_passage`: before every ``". "``-separated
piece and every line, each piece keeping the whitespace before it (HotPotQA's
convention), so that joining the sentences gives the passage back exactly. With
ReAct's protocol the environment joins a page's sentences back into that text and
splits it as ReAct's ``WikiEnv`` does; the lenient protocol shows the first five
pieces, stripped and joined with a space (the passage up to its fifth ``". "``).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from react import paths
from react.download import check_file, expected_checksums
from react.io import PROVENANCE_KEY, DataFileError, atomic_path
from react.paths import resolve_path
from react.schemas import CORPUS_SCHEMA

WRITE_ROWS = 50_000  # rows per Parquet batch
LOG_EVERY_S = 60.0
# A sentence begins after ". " (its leading space kept) and at each line break.
_SENTENCE_START = re.compile(r"(?<=\.)(?= )|(?=\n)")
log = logging.getLogger(__name__)

Row = tuple[str, list[str]]
# A source's rows, what to record about its inputs, and what to add to that once every row is read.
Reading = tuple[Iterator[Row], dict[str, Any], Callable[[], dict[str, Any]]]


class CorpusSource(Protocol):
    """The typed settings of an offline ``corpus`` entry, built once from the validated config."""

    name: ClassVar[str]  # the entry's kind: its `source`, or "splits"

    @property
    def download_url(self) -> str | None:
        """The URL the workflow downloads for this entry (into paths.DOWNLOAD_DIR), if any."""

    def input_files(self, download_dir: str | Path = paths.DOWNLOAD_DIR) -> list[str]:
        """The local files the corpus is built from (the workflow's inputs: editing one rebuilds it)."""

    def problems(self, where: str) -> list[str]:
        """What the schema cannot say about the entry (``where``: its config key), e.g. missing files."""


# --------------------------------------------------------------------------- passages and rows


def split_passage(text: str) -> list[str]:
    """A passage as sentences: cut before each ``" "`` that follows a ``"."`` and before each line break.

    Every piece keeps the whitespace in front of it, so ``"".join(split_passage(t)) ==
    t.strip()``; whitespace-only pieces are merged into the next one.
    """
    sentences: list[str] = []
    pending = ""
    for piece in _SENTENCE_START.split(text.strip()):
        if not piece.strip():
            pending += piece
            continue
        sentences.append(pending + piece)
        pending = ""
    return sentences


def sentences_of(value: Any, key: str, where: str) -> list[str]:
    """A text as sentences: a passage (split) or a list of strings (kept as it is)."""
    if isinstance(value, str):
        return split_passage(value)
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return value
    raise DataFileError(f"{where}: key {key!r} should be a string or a list of strings, got "
                        f"{type(value).__name__}")


def title_text_row(obj: Any, title_key: str, text_key: str, where: str, hint: str = "") -> Row:
    """The row of a JSON object with a title and a text; errors name ``where`` and the keys found."""
    if not isinstance(obj, dict):
        raise DataFileError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if title_key not in obj or text_key not in obj:
        raise DataFileError(f"{where}: no {title_key!r} and {text_key!r} keys (found: "
                            f"{', '.join(map(repr, obj)) or 'none'}){hint}")
    title = obj[title_key]
    if not isinstance(title, str):
        raise DataFileError(f"{where}: key {title_key!r} should be a string, got {type(title).__name__}")
    return title, sentences_of(obj[text_key], text_key, where)


# --------------------------------------------------------------------------- entries read from a file


class RowSource:
    """A source whose rows are streamed into the corpus file (every one but the splits)."""

    name: ClassVar[str]

    def read(self, download_dir: str | Path = paths.DOWNLOAD_DIR) -> Reading:
        raise NotImplementedError

    def build(self, out: str | Path, provenance: dict[str, Any],
              download_dir: str | Path = paths.DOWNLOAD_DIR) -> None:
        rows, inputs, finish = self.read(download_dir)
        write_corpus(rows, out, {**provenance, "source": self.name, "inputs": inputs}, finish)


@dataclass(frozen=True)
class FileSource(RowSource):
    """An entry read from one local file (``path``), checked against its ``md5``/``sha256`` when given."""

    path: str
    md5: str | None
    sha256: str | None

    @classmethod
    def from_config(cls, spec: dict[str, Any]) -> FileSource:
        return cls(path=spec["path"], md5=spec.get("md5"), sha256=spec.get("sha256"))

    @property
    def download_url(self) -> str | None:
        return None

    @property
    def fields(self) -> list[str]:
        """The keys or columns read (recorded in the provenance)."""
        raise NotImplementedError

    def rows(self, path: Path) -> Iterator[Row]:
        raise NotImplementedError

    def input_files(self, download_dir: str | Path = paths.DOWNLOAD_DIR) -> list[str]:
        return [str(resolve_path(self.path))]

    def problems(self, where: str) -> list[str]:
        if not self.path:
            return []
        path = resolve_path(self.path)
        if not path.exists():
            return [f"config key '{where}.path': {self.path} not found"]
        if path.is_dir():
            return [f"config key '{where}.path': {self.path} is a folder; a {self.name} corpus is one file"]
        return []

    def read(self, download_dir: str | Path = paths.DOWNLOAD_DIR) -> Reading:
        path = resolve_path(self.path)
        rows = self.rows(path)
        expected = expected_checksums(self.md5, self.sha256)

        def finish() -> dict[str, Any]:
            return {"file": {"name": path.name, **check_file(path, expected)}}

        return rows, {"path": str(path), "fields": self.fields}, finish


@dataclass(frozen=True)
class TitleTextSource(FileSource):
    """Rows with a title and a text (a passage, or a list of sentences) under configurable names."""

    title_field: str
    text_field: str

    @classmethod
    def from_config(cls, spec: dict[str, Any]) -> TitleTextSource:
        return cls(path=spec["path"], md5=spec.get("md5"), sha256=spec.get("sha256"),
                   title_field=spec["title_field"], text_field=spec["text_field"])

    @property
    def fields(self) -> list[str]:
        return [self.title_field, self.text_field]


# --------------------------------------------------------------------------- the corpus file


def write_corpus(rows: Iterable[Row], out: str | Path, provenance: dict[str, Any],
                 finish: Callable[[], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Stream ``rows`` into the corpus Parquet file ``out`` (atomically); its provenance, with counts.

    ``finish()``, called once every row is read, adds what only the end knows (an archive's
    hashes). The provenance goes into the file's footer (``react.io.read_provenance``).
    """
    stats = {"n_rows": 0, "n_empty_pages": 0, "n_sentences": 0}
    schema = CORPUS_SCHEMA.with_metadata({PROVENANCE_KEY: json.dumps(provenance, sort_keys=True, default=str)})
    t0 = time.monotonic()
    try:
        provenance = _write_rows(rows, out, schema, provenance, finish, stats)
    finally:
        close = getattr(rows, "close", None)
        if close is not None:  # a reader's threads stop now, not when the generator is collected
            close()
    log.info(f"corpus {out}: {stats['n_rows']:,} rows ({stats['n_empty_pages']:,} empty pages) in "
             f"{time.monotonic() - t0:.0f} s")
    return provenance


def _write_rows(rows: Iterable[Row], out: str | Path, schema: pa.Schema, provenance: dict[str, Any],
                finish: Callable[[], dict[str, Any]] | None, stats: dict[str, int]) -> dict[str, Any]:
    t0 = last = time.monotonic()
    with atomic_path(out) as tmp, pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        titles: list[str] = []
        sentences: list[list[str]] = []

        def flush() -> None:
            try:
                arrays = [pa.array(titles, pa.string()), pa.array(sentences, pa.list_(pa.string()))]
            except UnicodeEncodeError:  # a lone surrogate (a broken "\ud83d" escape): no UTF-8 for it
                arrays = _replace_surrogates(titles, sentences, stats["n_rows"] - len(titles), stats)
            writer.write_batch(pa.record_batch(arrays, schema=schema))
            titles.clear()
            sentences.clear()

        for title, sents in rows:
            titles.append(title)
            sentences.append(sents)
            stats["n_sentences"] += len(sents)
            if not any(s.strip() for s in sents):
                stats["n_empty_pages"] += 1
            if len(titles) == WRITE_ROWS:
                stats["n_rows"] += len(titles)
                flush()
                if time.monotonic() - last >= LOG_EVERY_S:
                    last = time.monotonic()
                    log.info(f"{out}: {stats['n_rows']:,} rows ({stats['n_rows'] / (last - t0):,.0f}/s)")
        stats["n_rows"] += len(titles)
        if titles or not stats["n_rows"]:
            flush()
        provenance = {**provenance, **(finish() if finish else {}), **stats}
        writer.add_key_value_metadata({PROVENANCE_KEY: json.dumps(provenance, sort_keys=True, default=str)})
    return provenance


_SURROGATE = re.compile("[\ud800-\udfff]")


def _replace_surrogates(titles: list[str], sentences: list[list[str]], first_row: int,
                        stats: dict[str, int]) -> list[pa.Array]:
    """The batch with each lone surrogate as U+FFFD; the rows are counted and named in the log."""
    for i, (title, sents) in enumerate(zip(titles, sentences, strict=True)):
        if _SURROGATE.search(title) or any(_SURROGATE.search(x) for x in sents):
            titles[i] = _SURROGATE.sub("\ufffd", title)
            sentences[i] = [_SURROGATE.sub("\ufffd", x) for x in sents]
            stats["n_rows_with_lone_surrogates"] = stats.get("n_rows_with_lone_surrogates", 0) + 1
            log.warning("row %d (title %r): lone surrogate replaced by U+FFFD", first_row + i, titles[i])
    return [pa.array(titles, pa.string()), pa.array(sentences, pa.list_(pa.string()))]
