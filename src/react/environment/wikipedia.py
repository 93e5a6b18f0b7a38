"""Wikipedia over HTTP for ReAct: a cached, polite ``WikipediaClient`` and ReAct's page-text processing.

As in ysymyth/ReAct's ``wikienv.py``, a search GETs ``{base}/w/index.php?search={entity
with spaces as +}`` (nothing else is escaped, so ``&`` or ``#`` in an entity cut the
query as they did online; redirects, such as Wikipedia's jump to an exactly matching
article, are followed within the wiki's host). Where this client differs from the original:

* HTTP statuses are checked (the original parsed whatever came back, 429 and 5xx
  error pages included): see :class:`WikipediaClient`. 414 (URI Too Long, caused by
  an over-long model-written entity) is kept like a page, as the original would.
* A body without a declared charset is decoded as UTF-8 (requests' ``.text``, which
  the original used, falls back to ISO-8859-1 for ``text/*``; Wikipedia always
  declares UTF-8).
* Responses are cached: a request is answered as Wikipedia answered it the first
  time, not as it would today (the original always fetched afresh).

The client caches every response on disk (one JSON file per request, written
atomically, first writer wins) and never refetches a cached request, so a run can
be replayed offline (``offline=True``) and each result traced to the exact pages
it saw (:meth:`WikipediaClient.served_sha256`).

:func:`clean_str` and :func:`page_text` are the original's text processing of a page.
"""

from __future__ import annotations

import codecs
import email.message
import hashlib
import json
import logging
import os
import re
import socket
import string
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import bs4
import httpx

from react import http
from react.agent.protocol import ActionCrash
from react.io import current_umask

DEFAULT_BASE_URL = "https://en.wikipedia.org"
# Wikimedia's User-Agent policy asks for a descriptive agent with contact details (a URL or an
# e-mail address): operators should pass their own.
DEFAULT_USER_AGENT = (
    "react-bench/0.1 (research benchmark of ReAct agents on HotPotQA; no contact configured) "
    f"python-httpx/{httpx.__version__}"
)
CACHE_FORMAT = 1
PARSER = "html.parser"  # what the original gives BeautifulSoup
# 414: the URL, i.e. the model's entity, is too long; deterministic, so parsed and cached like a page.
PAGE_STATUSES = (200, 414)
MAX_REDIRECTS = 10
log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- errors


class WikipediaError(RuntimeError):
    """A request to Wikipedia failed for good; the message names the URL, the last status or error and attempts."""

    def __init__(self, message: str, *, url: str, status: int | None = None, attempts: int = 0):
        super().__init__(message)
        self.url = url
        self.status = status
        self.attempts = attempts


class WikipediaCacheMiss(WikipediaError):
    """Offline mode and the request is not in the cache; the message names the query, URL and cache file."""


class WikipediaCacheError(WikipediaError):
    """A cache file does not hold a valid entry for its request; the message names the file."""


# --------------------------------------------------------------------------- cache


@dataclass(frozen=True)
class CachedResponse:
    """One response as stored: the raw HTML (decoded text), so that parsing changes stay reproducible."""

    url: str  # the request URL, as sent
    final_url: str  # after redirects
    status: int
    fetched_at: str  # ISO 8601, UTC
    content_type: str
    encoding: str  # how the body bytes were decoded into ``html``
    html: str
    sha256: str  # of ``html`` encoded as UTF-8

    @property
    def key(self) -> str:
        return cache_key(self.url)


def cache_key(url: str) -> str:
    """The cache key of a request: sha256 of its full URL (base URL included, so mirrors never mix)."""
    return hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()


def _text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class ResponseCache:
    """One JSON file per request under ``directory/<key[:2]>/<key>.json``.

    Entries are written to a temporary file and hard-linked into place, which
    fails if the name exists: the first writer wins, every reader sees a whole
    file, and processes sharing the directory (several SLURM jobs) all serve the
    same response for a request.
    """

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self._mode = 0o666 & ~current_umask()  # mkstemp files are private; the cache is shared

    def path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, url: str) -> CachedResponse | None:
        """The cached response for ``url``, None if absent; a file that is not a valid entry raises."""
        path = self.path(cache_key(url))
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise self._bad(path, url, f"unreadable ({exc})") from exc
        return self._parse_entry(path, url, text)

    def _parse_entry(self, path: Path, url: str, text: str) -> CachedResponse:
        try:
            data = json.loads(text)
            entry = CachedResponse(**{k: data[k] for k in CachedResponse.__dataclass_fields__})
        except (ValueError, TypeError, KeyError) as exc:
            raise self._bad(path, url, f"not a cache entry ({exc!r})") from exc
        if data.get("format") != CACHE_FORMAT:
            raise self._bad(path, url, f"cache format {data.get('format')!r}, expected {CACHE_FORMAT}")
        if entry.url != url:
            raise self._bad(path, url, f"holds {entry.url!r}")
        if _text_sha256(entry.html) != entry.sha256:
            raise self._bad(path, url, "html does not match its sha256")
        return entry

    @staticmethod
    def _bad(path: Path, url: str, why: str) -> WikipediaCacheError:
        return WikipediaCacheError(f"cache file {path} for {url}: {why}; delete it to refetch", url=url)

    def put(self, entry: CachedResponse) -> CachedResponse:
        """Store ``entry`` unless the request is cached already; return the entry the cache now holds."""
        path = self.path(entry.key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"format": CACHE_FORMAT, "key": entry.key, **asdict(entry)}, fh, ensure_ascii=False)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, self._mode)
            _publish(Path(tmp), path)
        finally:
            Path(tmp).unlink(missing_ok=True)
        stored = self.get(entry.url)  # ours, or a concurrent writer's that got there first
        if stored is None:
            raise self._bad(path, entry.url, "vanished right after it was written")
        return stored


def _publish(tmp: Path, path: Path) -> None:
    """Give ``tmp`` the name ``path`` unless that exists (atomic where hard links work)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # a concurrent writer won: its entry is served
    except OSError:
        # File systems without hard links: a rename is still atomic, only the winner may be the last writer.
        if not path.exists():
            os.replace(tmp, path)


# --------------------------------------------------------------------------- the search URL

# The cache is keyed by the search URL exactly as the original's HTTP library (requests, through
# urllib3) sent it, so that caches written before keep being served: its normalisation, ported.
_QUERY_CHARS = frozenset(string.ascii_letters + string.digits + "._-~" + "!$&'()*+,;=" + ":@/?")
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_PERCENT = re.compile(r"%[a-fA-F0-9]{2}")


def _encode_invalid_chars(component: str) -> str:
    """urllib3's: percent-encode what a query may not hold, keeping escapes if the text is escaped already."""
    if "%" not in component and component.isascii() and all(c in _QUERY_CHARS for c in component):
        return component
    component, n_escapes = _PERCENT.subn(lambda m: m.group(0).upper(), component)
    raw = component.encode("utf-8", "surrogatepass")
    keep_percent = n_escapes == raw.count(b"%")
    return "".join(
        chr(b) if (keep_percent and b == 0x25) or (b < 128 and chr(b) in _QUERY_CHARS) else f"%{b:02X}"
        for b in raw
    )


def _requote(uri: str) -> str:
    """requests' ``requote_uri``: unescape unreserved characters, then escape what is not allowed."""
    parts = uri.split("%")
    try:
        for i in range(1, len(parts)):
            pair = parts[i][:2]
            if len(pair) == 2 and pair.isalnum():
                char = chr(int(pair, 16))
                parts[i] = char + parts[i][2:] if char in _UNRESERVED else f"%{parts[i]}"
            else:
                parts[i] = f"%{parts[i]}"
    except ValueError:  # not an escape ("%zz"): escape every "%"
        return quote(uri, safe="!#$&'()*+,/:;=?@[]~")
    return quote("".join(parts), safe="!#$%&'()*+,/:;=?@[]~")


def search_url(base_url: str, entity: str) -> str:
    """The original's URL for a search of ``entity``, normalised as it was sent (that string keys the cache)."""
    prefix = str(httpx.URL(f"{base_url.rstrip('/')}/w/index.php"))
    query, _, fragment = f"search={entity.replace(' ', '+')}".partition("#")
    try:
        url = f"{prefix}?{_encode_invalid_chars(query)}"
        if fragment:
            url += f"#{_encode_invalid_chars(fragment)}"
        return _requote(url)
    except (ValueError, UnicodeError):
        # Never seen, but a model-written string must not crash the episode: escape everything.
        return f"{prefix}?search={quote(entity, safe='', errors='replace')}"


# --------------------------------------------------------------------------- the client


@dataclass
class ClientStats:
    hits: int = 0  # requests served from the cache
    misses: int = 0  # requests not in the cache
    fetches: int = 0  # HTTP attempts sent (retries included)
    retries: int = 0  # attempts after a transient failure

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class ServedPage:
    """One response given to an environment: enough to find the exact cache entry again."""

    query: str
    url: str
    key: str
    sha256: str


def pages_sha256(served: list[ServedPage]) -> str:
    """sha256 over the sorted distinct (cache key, response sha256) pairs: independent of serving order."""
    lines = sorted({f"{p.key} {p.sha256}\n" for p in served})
    return hashlib.sha256("".join(lines).encode("ascii")).hexdigest()


@dataclass
class WikipediaClient:
    """Fetches Wikipedia search pages through an on-disk cache, with bounded retries and waits.

    Failures: 429, 5xx, connection errors, timeouts and a 200 whose body is not
    HTML (empty, another content type: usually an overloaded edge, so it is
    retried and never cached) are retried up to ``max_retries`` times after
    deterministic delays (``backoff_base * 2**k`` capped at ``backoff_max``, or
    the server's ``Retry-After`` capped at ``max_retry_after``), giving up early
    rather than let the delays add up past ``max_total_wait`` (a
    :class:`react.http.RetryPolicy`). Other 4xx (and redirect loops, and redirects
    off the wiki's host) fail at once. Each attempt is bounded by ``connect_timeout``,
    ``read_timeout`` per read and ``response_deadline`` for the whole attempt
    (a server trickling bytes is left at that deadline).
    Errors are :class:`WikipediaError` naming the URL, last status or error and
    the number of attempts. A body labelled HTML is parsed whatever it holds, as
    the original did (undecodable bytes become U+FFFD).

    One client per thread: its counters and ``served`` record are not locked.
    Processes and threads share work through the cache directory instead.
    """

    cache_dir: str | Path
    base_url: str = DEFAULT_BASE_URL
    user_agent: str = DEFAULT_USER_AGENT
    offline: bool = False  # serve only from the cache; a missing entry raises WikipediaCacheMiss
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    response_deadline: float = 60.0
    max_retries: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 30.0
    max_retry_after: float = 60.0
    max_total_wait: float = 120.0
    max_bytes: int = 20_000_000  # Wikipedia's largest articles are a few MB of HTML
    # Injectable so that tests assert the delays without waiting.
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    stats: ClientStats = field(default_factory=ClientStats, init=False)
    served: list[ServedPage] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self.cache = ResponseCache(self.cache_dir)
        self.retry = http.RetryPolicy(
            attempts=self.max_retries + 1,
            base_delay=self.backoff_base,
            max_delay=self.backoff_max,
            max_retry_after=self.max_retry_after,
            max_total_wait=self.max_total_wait,
        )
        self._client = http.client(
            timeout=self.read_timeout,
            connect_timeout=self.connect_timeout,
            user_agent=self.user_agent,
            same_host=self.base_url,
            max_redirects=MAX_REDIRECTS,
        )

    def close(self) -> None:
        self._client.close()

    # ---- provenance

    def describe(self) -> dict[str, Any]:
        """What determines the responses: record it next to results."""
        return {
            "base_url": self.base_url,
            "cache_dir": str(Path(self.cache_dir).resolve()),
            "cache_format": CACHE_FORMAT,
            "offline": self.offline,
            "user_agent": self.user_agent,
            "parser": PARSER,
            "beautifulsoup4": bs4.__version__,
            "httpx": httpx.__version__,
        }

    def served_sha256(self) -> str:
        """sha256 of the set of cache entries served so far (see :func:`pages_sha256`)."""
        return pages_sha256(self.served)

    def manifest(self) -> list[dict[str, str]]:
        """The distinct entries served so far, sorted by key: which cache files a run depends on."""
        unique = {(p.key, p.sha256): p for p in self.served}
        return [{"key": p.key, "url": p.url, "sha256": p.sha256} for _, p in sorted(unique.items())]

    # ---- requests

    def search_url(self, entity: str) -> str:
        return search_url(self.base_url, entity)

    def search(self, entity: str) -> CachedResponse:
        return self.fetch(self.search_url(entity), query=entity)

    def fetch(self, url: str, query: str | None = None) -> CachedResponse:
        """The response for ``url``: from the cache, else downloaded, cached and served."""
        entry = self.cache.get(url)
        if entry is not None:
            self.stats.hits += 1
        else:
            self.stats.misses += 1
            if self.offline:
                raise WikipediaCacheMiss(
                    f"offline: no cached response for query {query!r} ({url}; expected "
                    f"{self.cache.path(cache_key(url))})",
                    url=url,
                )
            entry = self.cache.put(self._download(url))
        self.served.append(ServedPage(query if query is not None else url, url, entry.key, entry.sha256))
        return entry

    def _download(self, url: str) -> CachedResponse:
        def attempt(n: int) -> CachedResponse:
            self.stats.fetches += 1
            return self._attempt(url, n)

        def on_retry(failure: http.Transient, n: int, delay: float) -> None:
            self.stats.retries += 1
            log.warning("GET %s: %s; retry %d/%d in %g s", url, failure.reason, n, self.max_retries, delay)

        try:
            return http.with_retries(attempt, self.retry, sleep=self.sleep, on_retry=on_retry)
        except http.RetriesExhausted as exc:
            raise WikipediaError(f"GET {url} {exc}", url=url, status=exc.last.status, attempts=exc.attempts) from None

    def _attempt(self, url: str, attempt: int) -> CachedResponse:
        """One GET; raises Transient for what a retry may fix, WikipediaError for what it cannot.

        Timeouts bound each socket operation, not a server that trickles bytes: the
        GET runs in a daemon thread that the caller leaves at ``response_deadline``,
        shutting the socket down so that the thread ends too.
        """
        state: dict[str, Any] = {}
        finished = threading.Event()

        def work() -> None:
            try:
                state["value"] = self._get(url, attempt, state)
            except BaseException as exc:  # noqa: BLE001  (re-raised in the caller's thread)
                state["error"] = exc
            finally:
                finished.set()

        threading.Thread(target=work, name="wikipedia-get", daemon=True).start()
        if not finished.wait(self.response_deadline):
            _interrupt(state.get("response"))
            raise http.Transient(f"no complete response within {self.response_deadline:g} s")
        if "error" in state:
            raise state["error"]
        return state["value"]

    def _get(self, url: str, attempt: int, state: dict[str, Any]) -> CachedResponse:
        try:
            with self._client.stream("GET", url) as resp:
                state["response"] = resp  # for _interrupt
                status = resp.status_code
                if self.retry.retries_status(status):
                    retry_after = http.parse_retry_after(resp.headers.get("Retry-After"))
                    raise http.Transient(f"HTTP {status} {resp.reason_phrase}", status, retry_after)
                if status not in PAGE_STATUSES:
                    raise WikipediaError(
                        f"GET {url}: HTTP {status} {resp.reason_phrase} (not retried)",
                        url=url,
                        status=status,
                        attempts=attempt,
                    )
                body = self._read_body(resp, url, attempt)
                content_type = resp.headers.get("Content-Type", "")
                final_url = str(resp.url)
        except httpx.HTTPError as exc:
            if self.retry.retries_error(exc):
                raise http.Transient(f"{type(exc).__name__}: {exc}", transport=True) from exc
            raise WikipediaError(
                f"GET {url}: {type(exc).__name__}: {exc} (not retried)", url=url, attempts=attempt
            ) from exc
        encoding = _charset(content_type)
        html = body.decode(encoding, errors="replace")
        if status == 200 and not _looks_like_html(content_type, html):
            raise http.Transient(
                f"HTTP 200 with a body that is not HTML (Content-Type {content_type!r}, "
                f"{len(body)} bytes: {html[:60]!r})",
                status,
            )
        log.info("GET %s -> %d (%d bytes, attempt %d)", url, status, len(body), attempt)
        return CachedResponse(
            url=url,
            final_url=final_url,
            status=status,
            fetched_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            content_type=content_type,
            encoding=encoding,
            html=html,
            sha256=_text_sha256(html),
        )

    def _read_body(self, resp: httpx.Response, url: str, attempt: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
        for chunk in resp.iter_bytes(1 << 16):
            size += len(chunk)
            if size > self.max_bytes:
                raise WikipediaError(
                    f"GET {url}: body larger than {self.max_bytes} bytes (not retried)",
                    url=url,
                    status=resp.status_code,
                    attempts=attempt,
                )
            chunks.append(chunk)
        return b"".join(chunks)


def _interrupt(resp: httpx.Response | None) -> None:
    """Wake a thread blocked reading ``resp`` by shutting its socket down (else the read ends at its timeout)."""
    if resp is None:
        return
    try:
        stream = resp.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
    except Exception:  # best effort: the caller has moved on either way
        log.debug("could not interrupt %s", resp.url, exc_info=True)


def _charset(content_type: str) -> str:
    """The declared charset if Python knows it, else UTF-8 (what Wikipedia always sends)."""
    msg = email.message.Message()
    msg["Content-Type"] = content_type or "text/html"
    charset = msg.get_param("charset")
    if isinstance(charset, str):
        try:
            return codecs.lookup(charset).name
        except LookupError:
            pass
    return "utf-8"


def _looks_like_html(content_type: str, html: str) -> bool:
    if not html.strip():
        return False
    if content_type:
        return "html" in content_type.lower()
    return html.lstrip().startswith("<")


# --------------------------------------------------------------------------- the original's text processing


def clean_str(text: str, strict: bool = False) -> str:
    """The original's ``clean_str``: undo escaped text (``\\\\n``, ``\\\\u00e9``), mojibake-style.

    For text without backslashes it is the identity. Where the original raised (a
    malformed escape, a character latin-1 cannot hold): ActionCrash when ``strict``,
    else the text is kept.
    """
    try:
        return text.encode().decode("unicode-escape").encode("latin1").decode("utf-8")
    except UnicodeError as exc:
        if strict:
            raise ActionCrash(f"{type(exc).__name__}: {exc} (ReAct's clean_str)") from exc
        return text


def page_text(texts: list[str], strict: bool = False) -> str:
    """The original's page: texts of more than two space-separated words, cleaned, one per line."""
    page = ""
    for text in texts:
        if len(text.split(" ")) > 2:
            page += clean_str(text, strict)
            if not text.endswith("\n"):
                page += "\n"
    return page
