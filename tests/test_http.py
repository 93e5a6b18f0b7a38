"""react.http: the one retry policy, the Retry-After parser and the clients every caller builds."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from react import http
from react.http import RetriesExhausted, RetryPolicy, Transient, parse_retry_after, with_retries

NOW = datetime(2015, 10, 21, 7, 27, 0, tzinfo=timezone.utc)

# --------------------------------------------------------------------------- Retry-After


@pytest.mark.parametrize(("value", "seconds"), [
    ("120", 120.0),
    (" 7 ", 7.0),
    ("1.5", 1.5),
    ("0", 0.0),
    ("-3", 0.0),  # asks for no wait
    # An HTTP date in each of the three forms RFC 9110 allows, one minute after NOW.
    ("Wed, 21 Oct 2015 07:28:00 GMT", 60.0),
    ("Wednesday, 21-Oct-15 07:28:00 GMT", 60.0),
    ("Wed Oct 21 07:28:00 2015", 60.0),
    ("Wed, 21 Oct 2015 09:28:00 +0200", 60.0),
    ("Wed, 21 Oct 2015 07:28:00 -0000", 60.0),
    ("Tue, 20 Oct 2015 07:28:00 GMT", 0.0),  # in the past: no wait
])
def test_retry_after_reads_seconds_and_dates(value, seconds):
    assert parse_retry_after(value, now=NOW) == seconds


@pytest.mark.parametrize("value", [None, "", "   ", "soon", "nan", "inf", "1e999", "0x10", "7 s",
                                   "Wed, 99 Foo 2015 07:28:00 GMT", "Wed, 21 Oct"])
def test_unreadable_retry_after_is_none(value):
    assert parse_retry_after(value, now=NOW) is None


def test_retry_after_date_is_read_against_the_clock():
    soon = (datetime.now(timezone.utc) + timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert 25 <= parse_retry_after(soon) <= 30


@given(st.text(max_size=40))
def test_any_retry_after_is_none_or_a_finite_wait(value):
    seconds = parse_retry_after(value, now=NOW)
    assert seconds is None or 0 <= seconds < float("inf")


# --------------------------------------------------------------------------- the policy


def test_backoff_doubles_up_to_its_cap():
    policy = RetryPolicy(base_delay=1.0, max_delay=5.0)
    assert [policy.delay(k) for k in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_retry_after_replaces_the_backoff_and_is_capped():
    assert RetryPolicy(max_delay=30.0).delay(1, retry_after=45.0) == 30.0  # no cap of its own: max_delay
    policy = RetryPolicy(max_delay=30.0, max_retry_after=60.0)
    assert [policy.delay(3, r) for r in (7.0, 45.0, 3600.0, 0.0)] == [7.0, 45.0, 60.0, 0.0]


def test_jitter_adds_at_most_its_share():
    random.seed(0)
    delays = [RetryPolicy(base_delay=2.0, jitter=0.1).delay(1) for _ in range(200)]
    assert all(2.0 <= d <= 2.2 for d in delays) and len(set(delays)) > 100
    assert RetryPolicy(base_delay=2.0, jitter=0.1).delay(1, retry_after=1.0) <= 1.1


def test_which_statuses_and_errors_retry():
    policy = RetryPolicy()
    assert [s for s in (200, 404, 408, 414, 429, 500, 503, 599) if policy.retries_status(s)] == [429, 500, 503, 599]
    assert RetryPolicy(statuses=frozenset({408, 429})).retries_status(408)
    request = httpx.Request("GET", "http://127.0.0.1/")
    retried = [httpx.ConnectError("refused", request=request), httpx.ReadTimeout("slow", request=request),
               httpx.RemoteProtocolError("cut", request=request)]
    assert all(policy.retries_error(e) for e in retried)
    assert not policy.retries_error(httpx.TooManyRedirects("loop", request=request))
    assert not policy.retries_error(http.OffHostRedirect("elsewhere", request=request))
    assert not policy.retries_error(ValueError("not HTTP"))


def test_a_policy_needs_one_attempt():
    with pytest.raises(ValueError, match="attempts >= 1"):
        RetryPolicy(attempts=0)


# --------------------------------------------------------------------------- the retry loop


def failing(failures: list[Exception], result: str = "ok"):
    """An attempt that raises ``failures`` in turn, then returns ``result``; records the attempt numbers."""
    seen: list[int] = []

    def attempt(n: int) -> str:
        seen.append(n)
        if failures:
            raise failures.pop(0)
        return result

    return attempt, seen


def test_transient_failures_are_retried_after_the_policys_waits():
    attempt, seen = failing([Transient("HTTP 503"), Transient("HTTP 429", 429, retry_after=7.0)])
    sleeps, retried = [], []
    result = with_retries(attempt, RetryPolicy(attempts=3), sleep=sleeps.append,
                          on_retry=lambda failure, n, delay: retried.append((failure.reason, n, delay)))
    assert result == "ok" and seen == [1, 2, 3]
    assert sleeps == [1.0, 7.0]
    assert retried == [("HTTP 503", 1, 1.0), ("HTTP 429", 2, 7.0)]


def test_gives_up_after_the_last_attempt_naming_the_last_failure():
    attempt, seen = failing([Transient(f"HTTP 50{i}", 500 + i) for i in range(5)])
    sleeps = []
    with pytest.raises(RetriesExhausted) as err:
        with_retries(attempt, RetryPolicy(attempts=3), sleep=sleeps.append)
    assert (err.value.attempts, err.value.waited, err.value.last.status) == (3, 3.0, 502)
    assert str(err.value) == "failed after 3 attempt(s) and 3 s of waiting: HTTP 502"
    assert seen == [1, 2, 3] and sleeps == [1.0, 2.0]


def test_gives_up_early_rather_than_wait_past_the_total():
    attempt, _ = failing([Transient("busy")] * 10)
    sleeps = []
    with pytest.raises(RetriesExhausted, match="after 3 attempt"):
        with_retries(attempt, RetryPolicy(attempts=10, max_total_wait=5.0), sleep=sleeps.append)
    assert sleeps == [1.0, 2.0]  # 4 s more would make 7


def test_other_errors_pass_through_at_once():
    attempt, seen = failing([KeyError("not transient")])
    with pytest.raises(KeyError):
        with_retries(attempt, RetryPolicy(), sleep=pytest.fail)
    assert seen == [1]


# --------------------------------------------------------------------------- clients


def test_client_sends_the_user_agent_and_follows_redirects_within_bounds(file_server):
    (file_server.root / "a.txt").write_bytes(b"hello")
    with http.client(timeout=5) as c:
        assert c.headers["User-Agent"] == http.USER_AGENT
        assert c.get(f"{file_server.url}/a.txt").content == b"hello"
        assert c.timeout.read == 5 and c.max_redirects == 10
    with http.client(timeout=5, connect_timeout=1, user_agent="me/1.0") as c:
        assert (c.timeout.connect, c.timeout.read, c.headers["User-Agent"]) == (1, 5, "me/1.0")


def test_same_host_client_refuses_other_hosts():
    with http.client(timeout=5, same_host="http://127.0.0.1:8080") as c:
        with pytest.raises(http.OffHostRedirect, match=r"127\.0\.0\.1:9/x leaves 127\.0\.0\.1 \(refused\)"):
            c.get("http://127.0.0.1:9/x")  # a port of its own is another host; refused before any connection
