"""``hotpotqa-abstracts``: the processed Wikipedia of 2017-10-01 that HotPotQA's fullwiki setting searches.

:data:`ABSTRACTS_2017`: a ``.tar.bz2`` of folders ``AA/``, ``AB/``, ... holding
``wiki_00.bz2`` ... ``wiki_99.bz2``, each a bz2 file of JSON lines with ``id``,
``url``, ``title``, ``text`` (the abstract as HotPotQA's sentences, those after the
first with their leading space), ``text_with_links``, ``charoffset``. Read from the
archive (downloaded from ``url`` and checked, or a local ``path``) in member order,
or from its unpacked folder (``path``) in sorted path order; the sentences are kept
as they are. Only ``title`` and ``text`` are used.
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
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from react import paths
from react.download import Hashes, HashingReader, download, expected_checksums, mismatches, url_file_name
from react.io import DataFileError
from react.paths import resolve_path
from react.search.sources.base import Reading, Row, RowSource, title_text_row

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
_MEMBER = re.compile(r"^wiki_\d+(\.bz2)?$")  # WikiExtractor's file names
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HotpotqaAbstracts(RowSource):
    """The archive downloaded from ``url``, or a local ``path`` (the archive or its unpacked folder)."""

    name: ClassVar[str] = "hotpotqa-abstracts"
    url: str | None
    path: str | None
    md5: str | None
    sha256: str | None

    @classmethod
    def from_config(cls, spec: dict[str, Any]) -> HotpotqaAbstracts:
        return cls(url=spec.get("url"), path=spec.get("path"), md5=spec.get("md5"), sha256=spec.get("sha256"))

    @property
    def download_url(self) -> str | None:
        return None if self.path else self.url

    def archive_path(self, download_dir: str | Path = paths.DOWNLOAD_DIR) -> Path:
        """Where the archive (or folder) is: ``path``, else where the download goes."""
        if self.path:
            return resolve_path(self.path)
        return Path(download_dir) / url_file_name(self.url)

    def input_files(self, download_dir: str | Path = paths.DOWNLOAD_DIR) -> list[str]:
        path = self.archive_path(download_dir)
        if path.is_dir():
            return [str(p) for p in abstract_files(path)] or [str(path)]
        return [str(path)]

    def problems(self, where: str) -> list[str]:
        if self.path and not resolve_path(self.path).exists():
            return [f"config key '{where}.path': {self.path} not found"]
        return []

    def read(self, download_dir: str | Path = paths.DOWNLOAD_DIR) -> Reading:
        path = self.archive_path(download_dir)
        expected = expected_checksums(self.md5, self.sha256)
        inputs: dict[str, Any] = {"path": str(path), "url": self.url, "expected": expected}
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


def download_archive(source: HotpotqaAbstracts, dest: str | Path) -> dict[str, str]:
    """Fetch the entry's ``url`` to ``dest``, checked by its md5/sha256."""
    checksums = expected_checksums(source.md5, source.sha256)
    hashes = download(source.url, dest, checksums)
    _note_third_party_sha256(source.url, hashes)
    return hashes


def _note_third_party_sha256(url: str, hashes: dict[str, str]) -> None:
    """Say whether the archive confirms the third party's sha256 (recorded, not relied upon)."""
    if hashes.get("md5") == ABSTRACTS_2017["md5"]:
        confirmed = hashes["sha256"] == ABSTRACTS_2017["sha256"]
        log.log(logging.INFO if confirmed else logging.WARNING,
                "%s: the authors' md5 matches; the third-party sha256 %s is %s (the file's: %s)", url,
                ABSTRACTS_2017["sha256"], "confirmed" if confirmed else "NOT confirmed", hashes["sha256"])


# --------------------------------------------------------------------------- parsing


_CHAROFFSET = b'"charoffset":'


def _loads_title_text(line: bytes) -> Any:
    """``json.loads(line)``, but only up to ``"charoffset"`` when that key follows ``title`` and ``text``.

    The dump writes ``id, url, title, text, charoffset, text_with_links, ...``, and the
    token offsets are most of a line and of the time ``json.loads`` takes (BENCHMARKS.md 6).
    The cut is sound: a ``"`` inside a JSON string is escaped, so the text before ``, "charoffset":`` closed with a ``}`` parses only if the key is at the top
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
        yield title_text_row(obj, "title", "text", f"{where}:{line_no}")


# --------------------------------------------------------------------------- reading the archive or folder


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
