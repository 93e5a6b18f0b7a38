"""Offline Wikipedias from corpora other than HotPotQA's context paragraphs.

A ``corpus`` entry of the configuration with a ``source`` is streamed into the corpus
Parquet file (rows of :data:`react.schemas.CORPUS_SCHEMA`: title, sentences) that
``react.search.index.build_index`` indexes, in batches: no source is ever held in memory whole.

``hotpotqa-abstracts``
    The processed Wikipedia of 2017-10-01 that HotPotQA's fullwiki setting searches
    (:data:`ABSTRACTS_2017`): a ``.tar.bz2`` of folders ``AA/``, ``AB/``, ... holding
    ``wiki_00.bz2`` ... ``wiki_99.bz2``, each a bz2 file of JSON lines with ``id``,
    ``url``, ``title``, ``text`` (the abstract as HotPotQA's sentences, those after the
    first with their leading space), ``text_with_links``, ``charoffset``. Read from the
    archive (downloaded from ``url`` and checked, or a local ``path``) in member order,
    or from its unpacked folder (``path``) in sorted path order; the sentences are kept
    as they are. Only ``title`` and ``text`` are used.
``flashrag``
    FlashRAG's JSONL (``{"id": ..., "contents": "\\"Title\\"\\ntext"}``, as its wiki-18
    100-word passages ship): the first line of ``contents`` is the title (its
    surrounding double quotes removed), the rest the passage.
``jsonl`` / ``parquet``
    One row per page or passage with a title and a text (``title_field``,
    ``text_field``; default ``title`` and ``text``): the text a string (a passage) or a
    list of strings (its sentences, kept as they are).

A passage string is split by :func:`split_passage`: before every ``". "``-separated
piece and every line, each piece keeping the whitespace before it (HotPotQA's
convention), so that joining the sentences gives the passage back exactly. With
ReAct's protocol the environment joins a page's sentences back into that text and
splits it as ReAct's ``WikiEnv`` does; the lenient protocol shows the first five
pieces, stripped and joined with a space (the passage up to its fifth ``". "``).

Rows stay in source order; none is dropped. A page whose text is empty is kept: the
title exists, and a Search for it shows the empty page as ReAct shows one. Several rows
may share a title (FlashRAG's passages of one article): Search serves the first in file
order, every row is a BM25 document, and Similar lists a title once.
"""

from __future__ import annotations

import bz2
import json
import logging
import os
import queue
import re
import tarfile
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from react.download import (
    Hashes,
    HashingReader,
    check_file,
    download,
    expected_checksums,
    mismatches,
    url_file_name,
)
from react.io import PROVENANCE_KEY, DataFileError, atomic_path, iter_jsonl
from react.paths import resolve_path
from react.schemas import CORPUS_SCHEMA

SOURCES = ("hotpotqa-abstracts", "flashrag", "jsonl", "parquet")

# HotPotQA's processed Wikipedia for the fullwiki setting (hotpotqa.github.io). The md5 is
# the one its authors publish; the sha256 is a third party's, to be confirmed by the first
# download (every download and archive read records both).
ABSTRACTS_2017: dict[str, Any] = {
    "url": "https://nlp.stanford.edu/projects/hotpotqa/enwiki-20171001-pages-meta-current-withlinks-abstracts.tar.bz2",
    "size": 1_553_565_403,
    "md5": "01edf64cd120ecc03a2745352779514c",
    "sha256": "1acca1c5cc93c4890ea51091d2bad7c3ef6987aead127ab88728dc9e26555729",
    "root": "enwiki-20171001-pages-meta-current-withlinks-abstracts",
    "abstracts": 5_233_329,
}
DOWNLOAD_DIR = "results/downloads"
WRITE_ROWS = 50_000  # rows per Parquet batch
LOG_EVERY_S = 60.0
_MEMBER = re.compile(r"^wiki_\d+(\.bz2)?$")  # WikiExtractor's file names
# A sentence begins after ". " (its leading space kept) and at each line break.
_SENTENCE_START = re.compile(r"(?<=\.)(?= )|(?=\n)")
log = logging.getLogger(__name__)

Row = tuple[str, list[str]]


# --------------------------------------------------------------------------- passages


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


def _sentences(value: Any, key: str, where: str) -> list[str]:
    if isinstance(value, str):
        return split_passage(value)
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return value
    raise DataFileError(f"{where}: key {key!r} should be a string or a list of strings, got "
                        f"{type(value).__name__}")


def _title_text(obj: Any, title_key: str, text_key: str, where: str, hint: str = "") -> Row:
    if not isinstance(obj, dict):
        raise DataFileError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if title_key not in obj or text_key not in obj:
        raise DataFileError(f"{where}: no {title_key!r} and {text_key!r} keys (found: "
                            f"{', '.join(map(repr, obj)) or 'none'}){hint}")
    title = obj[title_key]
    if not isinstance(title, str):
        raise DataFileError(f"{where}: key {title_key!r} should be a string, got {type(title).__name__}")
    return title, _sentences(obj[text_key], text_key, where)


# --------------------------------------------------------------------------- the 2017 abstracts


_CHAROFFSET = b'"charoffset":'


def _loads_title_text(line: bytes) -> Any:
    """``json.loads(line)``, but only up to ``"charoffset"`` when that key follows ``title`` and ``text``.

    The dump writes ``id, url, title, text, charoffset, text_with_links, ...``, and the
    token offsets are most of a line and of the time ``json.loads`` takes (a 25x faster
    read here). The cut is sound: a ``"`` inside a JSON string is escaped, so the text
    before ``, "charoffset":`` closed with a ``}`` parses only if the key is at the top
    level, and then holds the line's own title and text. Any other line is parsed whole.
    """
    pos = line.find(_CHAROFFSET)
    if pos > 0:
        cut = line.rfind(b",", 0, pos)
        if cut > 0 and not line[cut + 1:pos].strip():
            try:
                obj = json.loads(line[:cut] + b"}")
            except ValueError:
                obj = None
            if isinstance(obj, dict) and "title" in obj and "text" in obj:
                return obj
    return json.loads(line)


def _parse_lines(data: bytes, where: str) -> Iterator[Row]:
    for line_no, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = _loads_title_text(line)
        except UnicodeDecodeError as exc:
            raise DataFileError(f"{where}:{line_no}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
        except (ValueError, RecursionError) as exc:
            raise DataFileError(f"{where}:{line_no}: invalid JSON ({type(exc).__name__}: {exc})") from exc
        yield _title_text(obj, "title", "text", f"{where}:{line_no}")


_READ_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error, ValueError)
_DONE = object()


def _inflate(name: str, data: bytes) -> bytes:
    return bz2.decompress(data) if name.endswith(".bz2") else data


def _archive_members(path: Path, hashes: Hashes, stop: threading.Event) -> Iterator[tuple[str, bytes]]:
    """(name, compressed bytes) of the archive's wiki files in member order; the whole file is hashed."""
    with open(path, "rb") as raw:
        reader = HashingReader(raw, hashes)
        with tarfile.open(fileobj=reader, mode="r|*") as tar:
            for member in tar:
                if stop.is_set():
                    return
                if not member.isfile() or not _MEMBER.match(Path(member.name).name):
                    if member.isfile():
                        log.info("%s: skipping %s (not a wiki_NN file)", path, member.name)
                    continue
                try:
                    data = tar.extractfile(member).read()
                except _READ_ERRORS as exc:
                    raise DataFileError(f"{path}: {member.name}: corrupt or truncated archive "
                                        f"({type(exc).__name__}: {exc})") from exc
                yield f"{path}: {member.name}", data
        while reader.read(1 << 20):  # the bytes after the tar's end: the checksums cover the whole file
            pass


def _folder_members(files: list[Path], stop: threading.Event) -> Iterator[tuple[str, bytes]]:
    for path in files:
        if stop.is_set():
            return
        yield str(path), path.read_bytes()


def _decompressed(members: Callable[[threading.Event], Iterator[tuple[str, bytes]]], what: str,
                  threads: int) -> Iterator[tuple[str, bytes]]:
    """The members' decompressed bytes, in order, while the next ones are read and decompressed.

    bz2 and the archive's outer decompression release the GIL: a reader thread walks
    the archive and a pool inflates the wiki files (about a MB each, ``2 * threads``
    ahead at most) while this thread parses; memory stays a few files.
    """
    stop = threading.Event()
    ahead: queue.Queue = queue.Queue(maxsize=2 * threads)

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read(pool: ThreadPoolExecutor) -> None:
        try:
            for name, data in members(stop):
                if not put((name, pool.submit(_inflate, name, data))):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, which raises it
            put(exc)

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="inflate") as pool:
        reader = threading.Thread(target=read, args=(pool,), name="archive-reader", daemon=True)
        reader.start()
        try:
            while (item := ahead.get()) is not _DONE:
                if isinstance(item, BaseException):
                    if isinstance(item, DataFileError):
                        raise item
                    if isinstance(item, _READ_ERRORS):
                        raise DataFileError(f"{what}: corrupt or truncated archive ({type(item).__name__}: "
                                            f"{item})") from item
                    raise item
                name, future = item
                try:
                    data = future.result()
                except _READ_ERRORS as exc:
                    raise DataFileError(f"{name}: corrupt or truncated ({type(exc).__name__}: {exc})") from exc
                yield name, data
        finally:
            stop.set()
            while reader.is_alive():  # unblock the reader, then let it see `stop`
                try:
                    ahead.get_nowait()
                except queue.Empty:
                    reader.join(0.05)


def _threads() -> int:
    return max(1, min(8, len(os.sched_getaffinity(0))))


def _iter_archive(path: Path, hashes: Hashes, threads: int) -> Iterator[Row]:
    found = 0
    for name, data in _decompressed(lambda stop: _archive_members(path, hashes, stop), str(path), threads):
        found += 1
        yield from _parse_lines(data, name)
    if not found:
        raise DataFileError(f"{path}: no wiki_NN.bz2 files in this archive (is it HotPotQA's abstracts?)")


def abstract_files(folder: Path) -> list[Path]:
    """The ``wiki_NN(.bz2)`` files under an unpacked archive, in sorted path order."""
    return sorted((p for p in folder.rglob("wiki_*") if p.is_file() and _MEMBER.match(p.name)),
                  key=lambda p: p.relative_to(folder).as_posix())


def _iter_folder(folder: Path, threads: int) -> Iterator[Row]:
    files = abstract_files(folder)
    if not files:
        raise DataFileError(f"{folder}: no wiki_NN.bz2 files under this folder (is it HotPotQA's unpacked "
                            "abstracts?)")
    for name, data in _decompressed(lambda stop: _folder_members(files, stop), str(folder), threads):
        yield from _parse_lines(data, name)


def iter_abstracts(path: str | Path, hashes: Hashes | None = None, threads: int | None = None) -> Iterator[Row]:
    """(title, sentences) of HotPotQA's abstracts: an archive (hashed into ``hashes``) or its unpacked folder.

    ``threads`` decompress ahead (default: the CPUs this process may use, at most 8).
    """
    path = Path(path)
    threads = threads or _threads()
    if path.is_dir():
        return _iter_folder(path, threads)
    if not path.exists():
        raise DataFileError(f"{path}: file not found")
    return _iter_archive(path, hashes or Hashes(), threads)


# --------------------------------------------------------------------------- other formats


def flashrag_row(obj: Any, where: str) -> Row:
    """``{"contents": "\\"Title\\"\\ntext"}``: the first line, unquoted, and the passage after it."""
    if not isinstance(obj, dict):
        raise DataFileError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if "contents" not in obj:
        hint = "; for title/text rows use source: jsonl" if "title" in obj else ""
        raise DataFileError(f"{where}: no 'contents' key (found: {', '.join(map(repr, obj)) or 'none'}){hint}")
    contents = obj["contents"]
    if not isinstance(contents, str):
        raise DataFileError(f"{where}: key 'contents' should be a string, got {type(contents).__name__}")
    first, _, rest = contents.partition("\n")
    title = first.strip()
    if len(title) >= 2 and title[0] == title[-1] == '"':
        title = title[1:-1]
    return title, split_passage(rest)


def iter_flashrag(path: str | Path) -> Iterator[Row]:
    for line_no, obj in iter_jsonl(path):
        yield flashrag_row(obj, f"{path}:{line_no}")


def iter_title_text_jsonl(path: str | Path, title_field: str = "title", text_field: str = "text") -> Iterator[Row]:
    hint = "; for FlashRAG's {\"id\", \"contents\"} use source: flashrag"
    for line_no, obj in iter_jsonl(path):
        yield _title_text(obj, title_field, text_field, f"{path}:{line_no}",
                          hint if isinstance(obj, dict) and "contents" in obj else "")


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def iter_title_text_parquet(path: str | Path, title_field: str = "title", text_field: str = "text") -> Iterator[Row]:
    path = Path(path)
    if not path.exists():
        raise DataFileError(f"{path}: file not found")
    try:
        parquet = pq.ParquetFile(path)
        schema = parquet.schema_arrow
        if title_field not in schema.names or text_field not in schema.names:
            raise DataFileError(f"{path}: no {title_field!r} and {text_field!r} columns (found: "
                                f"{', '.join(map(repr, schema.names)) or 'none'})")
        title_type, text_type = schema.field(title_field).type, schema.field(text_field).type
        if not _is_string(title_type):
            raise DataFileError(f"{path}: column {title_field!r} has type {title_type}, expected a string")
        if not (_is_string(text_type) or ((pa.types.is_list(text_type) or pa.types.is_large_list(text_type))
                                           and _is_string(text_type.value_type))):
            raise DataFileError(f"{path}: column {text_field!r} has type {text_type}, expected a string or a "
                                "list of strings")
        row = 0
        for batch in parquet.iter_batches(batch_size=WRITE_ROWS, columns=[title_field, text_field]):
            titles, texts = batch.column(0).to_pylist(), batch.column(1).to_pylist()
            for title, text in zip(titles, texts, strict=True):
                if title is None or text is None or (isinstance(text, list) and None in text):
                    key = title_field if title is None else text_field
                    raise DataFileError(f"{path}: row {row}: column {key!r} is null")
                yield title, split_passage(text) if isinstance(text, str) else text
                row += 1
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataFileError(f"{path}: not a readable Parquet file ({exc})") from exc


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


# --------------------------------------------------------------------------- configuration entries

_SOURCE_KEYS = {
    "hotpotqa-abstracts": {"url", "md5", "sha256", "path"},
    "flashrag": {"path", "md5", "sha256"},
    "jsonl": {"path", "md5", "sha256", "title_field", "text_field"},
    "parquet": {"path", "md5", "sha256", "title_field", "text_field"},
}


def corpus_problems(corpora: dict[str, dict[str, Any]]) -> list[str]:
    """What the schema cannot say about the ``corpus`` entries: keys of another kind, missing files, clashes."""
    problems: list[str] = []
    downloads: dict[str, tuple[str, str]] = {}
    for name, spec in corpora.items():
        where = f"corpus.{name}"
        kind = "splits" if "splits" in spec else "live" if "live" in spec else spec.get("source")
        allowed = {"splits"} if kind == "splits" else {"live"} if kind == "live" else {"source", *_SOURCE_KEYS[kind]}
        for key in spec:
            if key not in allowed:
                problems.append(f"config key '{where}.{key}': not used by a {kind} corpus "
                                f"(its keys: {', '.join(sorted(allowed))})")
        if kind in ("splits", "live"):
            continue
        if spec.get("path"):
            path = resolve_path(spec["path"])
            if not path.exists():
                problems.append(f"config key '{where}.path': {spec['path']} not found")
            elif path.is_dir() and kind != "hotpotqa-abstracts":
                problems.append(f"config key '{where}.path': {spec['path']} is a folder; a {kind} corpus is one file")
        elif spec.get("url"):
            try:
                file = url_file_name(spec["url"])
            except ValueError as exc:
                problems.append(f"config key '{where}.url': {exc}")
                continue
            first = downloads.setdefault(file, (name, spec["url"]))
            if first[1] != spec["url"]:
                problems.append(f"config key '{where}.url': downloads to {DOWNLOAD_DIR}/{file}, as "
                                f"corpus.{first[0]}.url ({first[1]}) does; rename one")
    return problems



def archive_path(spec: dict[str, Any], download_dir: str | Path = DOWNLOAD_DIR) -> Path:
    """Where a ``hotpotqa-abstracts`` entry's archive (or folder) is: its ``path``, else the download's place."""
    if spec.get("path"):
        return resolve_path(spec["path"])
    return Path(download_dir) / url_file_name(spec["url"])


def input_files(spec: dict[str, Any], download_dir: str | Path = DOWNLOAD_DIR) -> list[str]:
    """The local files a corpus entry is built from (the workflow's inputs: editing one rebuilds the corpus)."""
    if "splits" in spec:
        return [f"results/data/hotpotqa/{split}.parquet" for split in spec["splits"]]
    if "source" not in spec:
        return []
    path = archive_path(spec, download_dir) if spec["source"] == "hotpotqa-abstracts" else resolve_path(spec["path"])
    if path.is_dir():
        return [str(p) for p in abstract_files(path)] or [str(path)]
    return [str(path)]


def download_archive(spec: dict[str, Any], dest: str | Path) -> dict[str, str]:
    """Fetch a ``hotpotqa-abstracts`` entry's ``url`` to ``dest``, checked by its md5/sha256."""
    checksums = expected_checksums(spec.get("md5"), spec.get("sha256"))
    hashes = download(spec["url"], dest, checksums)
    _note_third_party_sha256(spec["url"], hashes)
    return hashes


def _note_third_party_sha256(url: str, hashes: dict[str, str]) -> None:
    """Say whether the archive confirms the third party's sha256 (recorded, not relied upon)."""
    if hashes.get("md5") == ABSTRACTS_2017["md5"]:
        confirmed = hashes["sha256"] == ABSTRACTS_2017["sha256"]
        log.log(logging.INFO if confirmed else logging.WARNING,
                "%s: the authors' md5 matches; the third-party sha256 %s is %s (the file's: %s)", url,
                ABSTRACTS_2017["sha256"], "confirmed" if confirmed else "NOT confirmed", hashes["sha256"])


def _abstracts_rows(spec: dict[str, Any], download_dir: str | Path) -> tuple[Iterator[Row], dict, Callable]:
    path = archive_path(spec, download_dir)
    expected = expected_checksums(spec.get("md5"), spec.get("sha256"))
    inputs: dict[str, Any] = {"path": str(path), "url": spec.get("url"), "expected": expected}
    if path.is_dir():
        if expected:
            log.info("%s is a folder: the checksums %s are for the archive and are not checked", path, expected)
        return iter_abstracts(path), inputs, lambda: {"files": len(abstract_files(path))}
    hashes = Hashes()

    def finish() -> dict[str, Any]:
        actual = hashes.hexdigests()
        problem = mismatches(expected, actual, str(path))
        if problem:  # raised before the corpus file takes its final name
            raise DataFileError(problem)
        _note_third_party_sha256(str(path), actual)
        return {"archive": {"file": path.name, "bytes": hashes.size, **actual}}

    return iter_abstracts(path, hashes), inputs, finish


def rows_of(spec: dict[str, Any], download_dir: str | Path = DOWNLOAD_DIR) -> tuple[Iterator[Row], dict, Callable]:
    """The rows of a ``source`` entry, what to record about its inputs, and what to add once they are read."""
    source = spec.get("source")
    if source == "hotpotqa-abstracts":
        return _abstracts_rows(spec, download_dir)
    if source not in SOURCES:
        raise ValueError(f"unknown corpus source {source!r} (expected one of {', '.join(SOURCES)})")
    path = resolve_path(spec["path"])
    title_field, text_field = spec.get("title_field", "title"), spec.get("text_field", "text")
    if source == "flashrag":
        rows = iter_flashrag(path)
    elif source == "jsonl":
        rows = iter_title_text_jsonl(path, title_field, text_field)
    else:
        rows = iter_title_text_parquet(path, title_field, text_field)
    expected = expected_checksums(spec.get("md5"), spec.get("sha256"))
    inputs = {"path": str(path), "fields": [title_field, text_field] if source != "flashrag" else ["contents"]}

    def finish() -> dict[str, Any]:
        return {"file": {"name": path.name, **check_file(path, expected)}}

    return rows, inputs, finish


def build_corpus(spec: dict[str, Any], out: str | Path, provenance: dict[str, Any],
                 split_parquets: Iterable[str | Path] = (), download_dir: str | Path = DOWNLOAD_DIR) -> None:
    """Write the corpus Parquet file of a ``corpus`` entry: from its splits' contexts or from its ``source``."""
    if "splits" in spec:
        from react.search.index import build_corpus as build_from_splits

        build_from_splits(list(split_parquets), out, provenance)
        return
    rows, inputs, finish = rows_of(spec, download_dir)
    write_corpus(rows, out, {**provenance, "source": spec["source"], "inputs": inputs}, finish)
