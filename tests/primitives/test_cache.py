"""Single-flight cache: one computation for concurrent callers, errors to every waiter, expiry, scopes."""

from __future__ import annotations

import json
import signal
import threading
import time
from typing import Any

import pytest

from wasikv import Bucket
from wasikv_sdk.cache import Cache
from wasikv_sdk.coordination import CacheComputeError, CacheWaitTimeout, CorruptRecord

from .conftest import OpenBucket, finish, first_line, spawn_guest, spawn_worker


def test_get_set_and_expiry(bucket: Bucket) -> None:
    cache = Cache(bucket)
    assert cache.get("k") is None and cache.get("k", "dflt") == "dflt"
    cache.set("k", {"a": [1, 2]})
    assert cache.get("k") == {"a": [1, 2]}
    cache.set("short", 1, ttl=0.2)
    assert cache.get("short") == 1
    time.sleep(0.3)
    assert cache.get("short") is None
    cache.set("failed", error=KeyError("nope"))
    with pytest.raises(CacheComputeError) as caught:
        cache.get("failed")
    assert caught.value.type_name == "KeyError" and "nope" in caught.value.message
    cache.set("failed2", error="it broke")
    with pytest.raises(CacheComputeError, match="it broke"):
        cache.get_or_compute("failed2", lambda: 1)
    cache.set("null", None)
    assert cache.get("null", "dflt") is None  # a stored None is a value
    bucket.set(cache.prefix + "junk", b"\x00")
    with pytest.raises(CorruptRecord):
        cache.get("junk")


def test_get_or_compute_computes_once_and_respects_ttl(bucket: Bucket) -> None:
    cache = Cache(bucket, "s")
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        return len(calls)

    assert cache.get_or_compute("k", compute) == 1
    assert cache.get_or_compute("k", compute) == 1
    assert cache.get_or_compute("t", compute, ttl=0.2) == 2
    time.sleep(0.3)
    assert cache.get_or_compute("t", compute, ttl=0.2) == 3
    with pytest.raises(CacheComputeError) as caught:
        cache.get_or_compute("bad", lambda: object())  # not JSON: a computation error
    assert caught.value.type_name == "TypeError"


def test_scopes_list_remove_and_clear(bucket: Bucket) -> None:
    a, ab, other = Cache(bucket, "a"), Cache(bucket, "a/b"), Cache(bucket, "user:1")
    for cache in (a, ab, other):
        for key in ("x/1", "x/2", "y"):
            cache.set(key, cache.scope)
    a.set("gone", 1, ttl=0.05)
    time.sleep(0.1)
    assert a.list() == ["x/1", "x/2", "y"]  # expired entries are not listed; "a/b" is not inside "a"
    assert ab.get("y") == "a/b" and a.get("y") == "a"
    assert a.remove_starting_with("x/") == 2
    assert a.list() == ["y"] and ab.list() == ["x/1", "x/2", "y"]
    a.remove("y")
    assert a.get("y") is None
    assert ab.clear() == 3
    assert ab.list() == [] and other.list() == ["x/1", "x/2", "y"]
    assert Cache(bucket).list() == []


def test_interrupted_computation_frees_the_key_at_once(bucket: Bucket) -> None:
    cache = Cache(bucket, pending_ttl=600)

    def interrupted() -> int:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.get_or_compute("k", interrupted)
    assert cache.get_or_compute("k", lambda: 7, wait_timeout=0) == 7


def test_removed_while_computing_is_not_stored(bucket: Bucket) -> None:
    cache = Cache(bucket)

    def compute() -> int:
        cache.remove("k")
        return 1

    assert cache.get_or_compute("k", compute) == 1
    assert cache.get("k") is None


def run_callers(bucket: Bucket, cache_args: dict[str, Any], fn: Any, callers: int = 8) -> list[Any]:
    start = threading.Barrier(callers)
    results: list[Any] = [None] * callers

    def call(index: int) -> None:
        cache = Cache(bucket, "flight", **cache_args)
        start.wait()
        try:
            results[index] = ("value", cache.get_or_compute("k", fn, wait_timeout=60))
        except CacheComputeError as exc:
            results[index] = ("error", exc)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_eight_concurrent_callers_one_computation(bucket: Bucket) -> None:
    def compute() -> dict[str, int]:
        count = bucket.increment("calls")
        time.sleep(0.3)
        return {"computed": count}

    results = run_callers(bucket, {}, compute)
    assert bucket.get("calls") == b"1"
    assert results == [("value", {"computed": 1})] * 8


def test_an_error_reaches_every_waiter(bucket: Bucket) -> None:
    def compute() -> int:
        bucket.increment("calls")
        time.sleep(0.3)
        raise ValueError("upstream is down")

    results = run_callers(bucket, {"error_ttl": 30}, compute)
    assert bucket.get("calls") == b"1"
    assert [kind for kind, _ in results] == ["error"] * 8
    for _, exc in results:
        assert (exc.type_name, exc.message) == ("ValueError", "upstream is down")
    causes = [exc.__cause__ for _, exc in results if exc.__cause__ is not None]
    assert len(causes) == 1 and isinstance(causes[0], ValueError)  # the computing caller's


def test_error_expires_after_error_ttl(bucket: Bucket) -> None:
    cache = Cache(bucket, error_ttl=0.2)

    def fail() -> int:
        raise RuntimeError("once")

    with pytest.raises(CacheComputeError):
        cache.get_or_compute("k", fail)
    with pytest.raises(CacheComputeError):
        cache.get_or_compute("k", lambda: 1)
    time.sleep(0.3)
    assert cache.get_or_compute("k", lambda: 2) == 2


@pytest.mark.slow
def test_processes_and_guests_share_one_computation(sqlite_url: str, open_bucket: OpenBucket) -> None:
    running = [spawn_worker("cache-compute", sqlite_url, "shared", "report", "1.0") for _ in range(4)]
    running += [spawn_guest(sqlite_url, "cache-compute", "shared", "report", "1.0") for _ in range(2)]
    results = finish(running)
    assert open_bucket(sqlite_url).get("calls/report") == b"1"
    values = {result["value"] for result in results}
    assert len(values) == 1, results


@pytest.mark.slow
def test_abandoned_pending_marker_expires(
    sqlite_url: str, open_bucket: OpenBucket, reaper: list[Any]
) -> None:
    hung = spawn_worker("cache-hang", sqlite_url, "crashy", "k", "2.0")
    reaper.append(hung)
    assert first_line(hung) == {"computing": True}
    hung.send_signal(signal.SIGKILL)
    hung.wait(timeout=30)
    bucket = open_bucket(sqlite_url)
    cache = Cache(bucket, "crashy")
    marker = json.loads(bucket.get(cache.prefix + "k") or b"{}")
    assert marker["state"] == "pending"
    if time.time() < marker["expires"] - 0.3:
        with pytest.raises(CacheWaitTimeout):
            cache.get_or_compute("k", lambda: "too early", wait_timeout=0.1)
    assert cache.get_or_compute("k", lambda: "recomputed", wait_timeout=30) == "recomputed"
    assert time.time() >= marker["expires"]
