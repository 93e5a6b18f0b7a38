"""The one HTTP stack (httpx): clients, the retry policy and the ``Retry-After`` header.

Downloads (react.download), the live Wikipedia (react.environment.wikipedia) and the model
server (react.inference.openai) all build their clients with :func:`client` and retry with
:func:`with_retries` under a :class:`RetryPolicy`; each keeps its own error messages.
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TypeVar

import httpx

from react import __version__

USER_AGENT = f"react-bench/{__version__} (python-httpx/{httpx.__version__})"
# Failures of the connection, not answers of the server: refused, reset, timed out, cut mid-body.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    httpx.DecodingError,
)
T = TypeVar("T")
# httpx logs every request at INFO: thousands of lines per evaluation (callers log what matters).
if logging.getLogger("httpx").level == logging.NOTSET:
    logging.getLogger("httpx").setLevel(logging.WARNING)


# --------------------------------------------------------------------------- clients


class OffHostRedirect(httpx.RequestError):
    """A redirect that leaves the allowed host (never followed)."""


def client(
    *,
    timeout: float,
    connect_timeout: float | None = None,
    user_agent: str = USER_AGENT,
    headers: Mapping[str, str] | None = None,
    follow_redirects: bool = True,
    max_redirects: int = 10,
    same_host: str | None = None,
    limits: httpx.Limits | None = None,
) -> httpx.Client:
    """An httpx client: ``timeout`` bounds each socket operation (``connect_timeout`` the connect).

    With ``same_host`` (a URL), redirects are followed only within its host, and port where
    one is given (http -> https on the same host name is allowed): requests go nowhere else.
    """
    hooks = {"request": [_stay_on(httpx.URL(same_host))]} if same_host else {}
    return httpx.Client(
        headers={"User-Agent": user_agent, **(headers or {})},
        timeout=httpx.Timeout(timeout, connect=timeout if connect_timeout is None else connect_timeout),
        follow_redirects=follow_redirects,
        max_redirects=max_redirects,
        event_hooks=hooks,
        **({"limits": limits} if limits is not None else {}),
    )


def _stay_on(allowed: httpx.URL) -> Callable[[httpx.Request], None]:
    def check(request: httpx.Request) -> None:
        # httpx gives default ports as None, so an explicit port must match and a default one is no port.
        if (request.url.host, request.url.port) != (allowed.host, allowed.port):
            raise OffHostRedirect(f"redirect to {request.url} leaves {allowed.host} (refused)", request=request)

    return check


# --------------------------------------------------------------------------- retries


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date); None if absent or unreadable.

    A date in the past, or a negative number, asks for no wait (0). ``now`` defaults to the clock.
    """
    if not value or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, origin unknown
        when = when.replace(tzinfo=timezone.utc)
    return max((when - (now or datetime.now(timezone.utc))).total_seconds(), 0.0)


@dataclass(frozen=True)
class RetryPolicy:
    """Which failures are retried, how often, and how long to wait before each retry.

    The wait before retry k (k = 1, 2, ...) is ``base_delay * 2**(k-1)`` capped at
    ``max_delay``, or the server's ``Retry-After`` capped at ``max_retry_after``
    (``max_delay`` when None); ``jitter`` then adds up to that share at random. Retrying
    stops after ``attempts`` attempts, or earlier rather than let the waits add up past
    ``max_total_wait``.
    """

    attempts: int = 6  # in all, the first included
    base_delay: float = 1.0
    max_delay: float = 30.0
    jitter: float = 0.0
    max_retry_after: float | None = None
    max_total_wait: float = math.inf
    statuses: frozenset[int] = frozenset({429})  # retried, and so is every 5xx
    errors: tuple[type[Exception], ...] = TRANSIENT_ERRORS  # transport errors that are retried

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.base_delay < 0 or self.max_delay < 0 or self.jitter < 0:
            raise ValueError(f"{self}: need attempts >= 1 and delays and jitter >= 0")

    def retries_status(self, status: int) -> bool:
        return status in self.statuses or status >= 500

    def retries_error(self, exc: BaseException) -> bool:
        return isinstance(exc, self.errors)

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the second attempt)."""
        if retry_after is not None:
            cap = self.max_delay if self.max_retry_after is None else self.max_retry_after
            wait = min(max(retry_after, 0.0), cap)
        else:
            wait = min(self.base_delay * 2 ** (retry - 1), self.max_delay)
        return wait * (1 + self.jitter * random.random()) if self.jitter else wait


class Transient(Exception):
    """One failed attempt that a retry may fix; ``transport``: the connection failed, no answer came."""

    def __init__(self, reason: str, status: int | None = None, retry_after: float | None = None,
                 transport: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after
        self.transport = transport


class RetriesExhausted(Exception):
    """Every attempt the policy allows failed: the ``last`` failure, the ``attempts`` made, the seconds ``waited``."""

    def __init__(self, last: Transient, attempts: int, waited: float):
        super().__init__(f"failed after {attempts} attempt(s) and {waited:g} s of waiting: {last.reason}")
        self.last = last
        self.attempts = attempts
        self.waited = waited


def with_retries(
    attempt: Callable[[int], T],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[Transient, int, float], None] | None = None,
) -> T:
    """``attempt(n)`` for n = 1, 2, ... until it returns, retrying each :class:`Transient` it raises.

    ``on_retry(failure, n, delay)`` runs before each wait (to log or count); other exceptions
    pass through at once; once the policy gives up, :class:`RetriesExhausted`.
    """
    waited, n = 0.0, 0
    while True:
        n += 1
        try:
            return attempt(n)
        except Transient as exc:
            last = exc
        if n >= policy.attempts:
            raise RetriesExhausted(last, n, waited)
        delay = policy.delay(n, last.retry_after)
        if waited + delay > policy.max_total_wait:
            raise RetriesExhausted(last, n, waited)
        if on_retry is not None:
            on_retry(last, n, delay)
        sleep(delay)
        waited += delay
