"""Downloading input files: checked against published checksums, resumable, never half-written.

The bytes go to a hidden ``.<name>.<checksum>.part`` file next to the destination and are
renamed to the final name only once every checksum given matches, so a crash, a lost
connection or a wrong file never leaves anything under the final name. A lost connection
is resumed where it stopped (HTTP ``Range``) when the server allows it, a few times
within one call and again by the next call (the ``.part`` file stays for that); a server
that ignores ``Range`` sends the file again from the start. A file that does not match
is removed, and the error names the URL, the file and both hashes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import httpx

from react import http
from react.io import DataFileError, current_umask

DOWNLOAD_TIMEOUT_S = 60
ALGORITHMS = ("md5", "sha256")  # every download and archive read records both
CHUNK = 1 << 20
LOG_EVERY_S = 30.0  # progress lines when stderr is not a terminal (a Snakemake log)
RESUMES = 5  # lost connections resumed within one call
log = logging.getLogger(__name__)


class Hashes:
    """md5 and sha256 of a byte stream, fed as it is read."""

    def __init__(self) -> None:
        self._digests = {name: hashlib.new(name) for name in ALGORITHMS}
        self.size = 0

    def update(self, block: bytes | memoryview) -> None:
        for digest in self._digests.values():
            digest.update(block)
        self.size += len(block)

    def hexdigests(self) -> dict[str, str]:
        return {name: digest.hexdigest() for name, digest in self._digests.items()}


class HashingReader:
    """A read-only file object that hashes what is read through it (tarfile's stream mode reads with ``read``)."""

    def __init__(self, raw: BinaryIO, hashes: Hashes | None = None):
        self.raw = raw
        self.hashes = hashes or Hashes()

    def read(self, n: int = -1) -> bytes:
        block = self.raw.read(n)
        self.hashes.update(block)
        return block

    def close(self) -> None:
        self.raw.close()


def file_hashes(path: str | Path) -> dict[str, str]:
    hashes = Hashes()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            hashes.update(block)
    return hashes.hexdigests()


def expected_checksums(md5: str | None = None, sha256: str | None = None) -> dict[str, str]:
    return {name: value.lower() for name, value in (("md5", md5), ("sha256", sha256)) if value}


def mismatches(expected: dict[str, str], actual: dict[str, str], what: str) -> str | None:
    """The error naming ``what`` and both hashes of each checksum that differs; None if all match."""
    wrong = [f"{name} mismatch: expected {value}, got {actual[name]}" for name, value in expected.items()
             if actual[name] != value]
    return f"{what}: {'; '.join(wrong)}" if wrong else None


def check_file(path: str | Path, expected: dict[str, str]) -> dict[str, str]:
    """Both hashes of a local file, failing (naming the file and both hashes) if one given differs."""
    actual = file_hashes(path)
    problem = mismatches(expected, actual, str(path))
    if problem:
        raise DataFileError(problem)
    return actual


class Progress:
    """A tqdm bar on a terminal; otherwise a log line every LOG_EVERY_S seconds."""

    def __init__(self, name: str, total: int | None, initial: int = 0):
        self.name, self.total, self.done = name, total, initial
        self._start, self._start_bytes, self._last = time.monotonic(), initial, time.monotonic()
        self._bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, unit="B", unit_scale=True, desc=name)

    def update(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        if now - self._last >= LOG_EVERY_S:
            self._last = now
            rate = (self.done - self._start_bytes) / max(now - self._start, 1e-9) / 1e6
            share = f" of {self.total / 1e6:,.0f} MB ({100 * self.done / self.total:.1f}%)" if self.total else ""
            log.info(f"{self.name}: {self.done / 1e6:,.0f} MB{share}, {rate:.1f} MB/s")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
# The bytes as published: no transfer compression, whose bytes would be neither the file's nor its length.
_HEADERS = {"Accept-Encoding": "identity"}


class _Restart(http.Transient):
    """The partial file cannot be continued: start again from byte 0."""

    def __init__(self) -> None:
        super().__init__("the server cannot continue the partial file", retry_after=0.0)


def _fetch_into(client: httpx.Client, url: str, part: Path, hashes: Hashes, progress_name: str) -> None:
    """Append the rest of ``url`` to ``part`` (whose bytes ``hashes`` has seen); raise on a lost connection."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    with client.stream("GET", url, headers=headers) as response:
        if response.status_code == 416 and offset:  # nothing after `offset`: the part is whole or is another file
            raise _Restart
        if not response.is_success:  # an answer, not a lost connection: asking again will not help
            raise DataFileError(f"{url}: download failed (HTTP Error {response.status_code}: "
                                f"{response.reason_phrase})")
        length = response.headers.get("Content-Length")
        if offset and response.status_code == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != offset:
                raise _Restart
            total = int(match.group(3)) if match.group(3) != "*" else None
        else:
            if offset:  # the server ignored Range and sends the whole file
                log.info("%s: the server does not resume; downloading again from the start", url)
                raise _Restart
            total = int(length) if length else None
        expected_end = offset + int(length) if length else total
        progress = Progress(progress_name, total, offset)
        try:
            with open(part, "ab") as out:
                for block in response.iter_raw():  # as received: a lost connection keeps every byte
                    out.write(block)
                    hashes.update(block)
                    progress.update(len(block))
        finally:
            progress.close()
    if expected_end is not None and hashes.size < expected_end:
        raise httpx.RemoteProtocolError(f"the body ended after {hashes.size:,} of {expected_end:,} bytes")


def download(url: str, dest: str | Path, checksums: dict[str, str], timeout: float = DOWNLOAD_TIMEOUT_S,
             user_agent: str = http.USER_AGENT, resumes: int = RESUMES,
             sleep: Callable[[float], None] = time.sleep) -> dict[str, str]:
    """Download ``url`` to ``dest`` once its ``checksums`` (``{"md5"|"sha256": hex}``) match; its md5 and sha256.

    A no-op (but for hashing) when ``dest`` already has them. Interrupted transfers are
    resumed, ``resumes`` times here, and otherwise by the next call.
    """
    if not checksums:
        raise ValueError(f"{url}: a checksum (md5 or sha256) is needed to download it")
    unknown = set(checksums) - set(ALGORITHMS)
    if unknown:
        raise ValueError(f"{url}: unknown checksum {sorted(unknown)} (known: {', '.join(ALGORITHMS)})")
    dest = Path(dest)
    if dest.exists():
        actual = file_hashes(dest)
        if mismatches(checksums, actual, str(dest)) is None:
            return actual
        log.warning("%s exists but does not match %s; downloading it again", dest, checksums)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tag = next(iter(checksums.values()))[:16]  # a part file belongs to the file with this checksum
    part = dest.with_name(f".{dest.name}.{tag}.part")
    hashes = Hashes()
    if part.exists():
        with open(part, "rb") as fh:
            while block := fh.read(CHUNK):
                hashes.update(block)
        log.info(f"{url}: resuming after {hashes.size:,} bytes")
    if not (hashes.size and mismatches(checksums, hashes.hexdigests(), "") is None):  # else stopped before the rename
        # Each lost connection or restart is one retry of the policy: 2, 4, ... 60 s apart (a restart: at once).
        policy = http.RetryPolicy(attempts=resumes + 1, base_delay=2.0, max_delay=60.0, statuses=frozenset(),
                                  errors=(httpx.TransportError, OSError))

        def attempt(n: int) -> None:
            nonlocal hashes
            try:
                _fetch_into(client, url, part, hashes, dest.name)
            except _Restart:
                part.unlink(missing_ok=True)
                hashes = Hashes()
                raise
            except Exception as exc:  # noqa: BLE001  (the policy says which are lost connections)
                if not policy.retries_error(exc):
                    raise
                if not hashes.size:  # nothing received (no route, refused): the next run starts afresh
                    part.unlink(missing_ok=True)
                    raise DataFileError(f"{url}: download failed ({exc})") from exc
                raise http.Transient(str(exc), transport=True) from exc

        def on_retry(failure: http.Transient, n: int, delay: float) -> None:
            if failure.transport:
                log.warning(f"{url}: connection lost after {hashes.size:,} bytes ({failure.__cause__!r}); resuming")

        with http.client(timeout=timeout, user_agent=user_agent, headers=_HEADERS) as client:
            try:
                http.with_retries(attempt, policy, sleep=sleep, on_retry=on_retry)
            except http.RetriesExhausted as exc:
                if isinstance(exc.last, _Restart):
                    raise DataFileError(f"{url}: download failed (the server cannot continue {part.name})") from None
                raise DataFileError(f"{url}: download failed ({exc.last}); {hashes.size:,} bytes are kept in "
                                    f"{part} and the next run resumes from there") from exc.last.__cause__
    actual = hashes.hexdigests()
    problem = mismatches(checksums, actual, f"{url} (file {dest.name})")
    if problem:
        part.unlink(missing_ok=True)
        raise DataFileError(problem)
    os.chmod(part, 0o666 & ~current_umask())
    os.replace(part, dest)
    log.info(f"{url} -> {dest} ({hashes.size:,} bytes, " + ", ".join(f"{k} {v}" for k, v in actual.items()) + ")")
    return actual


def url_file_name(url: str) -> str:
    """The file name a URL's path ends with."""
    name = Path(urllib.parse.urlparse(url).path).name
    if not name:
        raise ValueError(f"{url}: the URL names no file")
    return name
