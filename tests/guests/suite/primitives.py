"""Primitives guest: the coordination primitives of wasikv_sdk inside a component.

Usage: `<component> primitives MODE [ARGS...]`, on the store "default":

- `suite`: exercises every primitive in this guest and prints one JSON line of
  observations (return values, raised error classes, clock checks);
- `lock-loop NAME KEY COUNT`: COUNT lock-protected get/+1/set updates of KEY;
- `lock-hold NAME TTL SECONDS`: take the lock, report, hold it SECONDS, release;
- `get-increment NAME COUNT`: the previous values of COUNT `get_increment`s;
- `cache-compute SCOPE KEY SECONDS`: single-flight KEY; the computation counts
  itself with `increment("calls/" + KEY)` and sleeps SECONDS.

Prints JSON lines; an unexpected exception is reported as `{"exception": ...}`
and fails the run (exit status 1).
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import wasikv_sdk.wit.exports
from wasikv_sdk import key_value
from wasikv_sdk.cache import Cache
from wasikv_sdk.coordination import CacheComputeError, CoordinationError, ResourceLockedError
from wasikv_sdk.counters import Counter, all_counters
from wasikv_sdk.errors import StoreError
from wasikv_sdk.locks import Lock
from wasikv_sdk.state import StateDictionary

LOOP_LOCK: dict[str, Any] = {"ttl": 30.0, "tries": 20000, "sleep": 0.001, "max_sleep": 0.02}


def say(data: Any) -> None:
    print(json.dumps(data), flush=True)


def raised(fn: Callable[[], Any]) -> str | None:
    """The class name of the coordination error `fn` raises (None if it returns)."""
    try:
        fn()
    except CoordinationError as exc:
        return type(exc).__name__
    return None


def clock_section() -> dict[str, Any]:
    wall, mono = time.time(), time.monotonic()
    time.sleep(0.05)
    return {"wall": wall, "slept_wall": time.time() - wall, "slept_mono": time.monotonic() - mono}


def counter_section(bucket: key_value.Bucket) -> dict[str, Any]:
    c = Counter(bucket, "guest/c")
    return {
        "missing": c.get(),
        "set": c.set(10),
        "increment": c.increment(),
        "increment_5": c.increment(5),
        "get_increment": c.get_increment(),
        "get_increment_3": c.get_increment(3),
        "get_set": c.get_set(-4),
        "get": c.get(),
        "raw": bucket.get(c.key).decode(),  # type: ignore[union-attr]
        "all": all_counters(bucket, "guest/"),
    }


def lock_section(bucket: key_value.Bucket) -> dict[str, Any]:
    first = Lock(bucket, "guest/l", ttl=0.3)
    other = Lock(bucket, "guest/l", ttl=5, tries=3, sleep=0.01)
    never = Lock(bucket, "guest/l")
    result: dict[str, Any] = {"release_unheld": raised(never.release)}
    first.acquire()
    result["locked"] = first.locked()
    result["owned"] = first.owned()
    result["timeout"] = raised(other.acquire)
    result["exists"] = raised(Lock(bucket, "guest/l", fail_if_exists=True).acquire)
    time.sleep(0.35)  # the lease runs out
    result["other_takes_over"] = other.acquire()
    result["stale_release"] = raised(first.release)
    result["fences"] = [first.fence, other.fence]
    other.release()
    result["locked_after"] = other.locked()
    with Lock(bucket, "guest/l") as held:
        result["context_owned"] = held.owned()
    return result


def state_section(bucket: key_value.Bucket) -> dict[str, Any]:
    state = StateDictionary(bucket, "guest/s")
    sub = state.subscribe()
    state.update_locks("alice", acquire={"a": None, "b": 10.0})
    result: dict[str, Any] = {"locks": state.copy_locks()}
    try:
        state.update_locks("bob", acquire={"b": None, "c": None})
    except ResourceLockedError as exc:
        result["bob_locked_out"] = exc.keys
    result["bob_got_c"] = "c" in state.copy_locks()
    result["bob_update"] = raised(lambda: state.update_state("bob", updates={"a": 1, "z": 2}))
    result["version"] = state.update_state("alice", updates={"a": 1, "b": [1, 2]}, removals=["nothing"])
    result["content"] = state.copy_content()
    change = sub.poll()
    result["change"] = {"updates": change.updates, "removals": sorted(change.removals)}
    state.update_locks("alice", release=["a", "b"])
    state.update_state("bob", updates={"z": True}, removals=["a"])
    change = sub.wait(1.0)
    result["change2"] = {"updates": change.updates, "removals": sorted(change.removals)}
    # Over the host's value size limit (2 MiB by default): refused whole.
    try:
        state.update_state("bob", updates={"big": "x" * (2 * 1024 * 1024)})
        result["too_big"] = None
    except StoreError as exc:
        result["too_big"] = type(exc).__name__
    result["version_after_too_big"] = state.version()
    return result


def cache_section(bucket: key_value.Bucket) -> dict[str, Any]:
    cache = Cache(bucket, "guest/scope")
    calls: list[int] = []

    def compute() -> dict[str, int]:
        calls.append(1)
        return {"answer": 42}

    def fail() -> None:
        raise ZeroDivisionError("no")

    first = cache.get_or_compute("k", compute)
    second = cache.get_or_compute("k", compute)
    try:
        cache.get_or_compute("bad", fail)
        error: Any = None
    except CacheComputeError as exc:
        error = [exc.type_name, exc.message]
    cache.set("other/1", "x")
    result = {
        "first": first,
        "second": second,
        "calls": len(calls),
        "error": error,
        "get": cache.get("k"),
        "list": cache.list(),
        "removed": cache.remove_starting_with("other/"),
        "list_after": cache.list(),
        "other_scope": Cache(bucket, "guest").list(),
        "cleared": cache.clear(),
    }
    return result


def suite(bucket: key_value.Bucket) -> None:
    say(
        {
            "clock": clock_section(),
            "counters": counter_section(bucket),
            "locks": lock_section(bucket),
            "state": state_section(bucket),
            "cache": cache_section(bucket),
        }
    )


def lock_loop(bucket: key_value.Bucket, name: str, key: str, count: str) -> None:
    for _ in range(int(count)):
        with Lock(bucket, name, **LOOP_LOCK):
            value = int(bucket.get(key) or b"0")
            bucket.set(key, str(value + 1).encode())
    say({"done": int(count)})


def lock_hold(bucket: key_value.Bucket, name: str, ttl: str, seconds: str) -> None:
    lock = Lock(bucket, name, ttl=float(ttl), tries=1000, sleep=0.01, max_sleep=0.1)
    lock.acquire()
    say({"acquired": True, "expires": lock.expires, "fence": lock.fence})
    time.sleep(float(seconds))
    lock.release()
    say({"released": True})


def get_increment(bucket: key_value.Bucket, name: str, count: str) -> None:
    counter = Counter(bucket, name)
    say([counter.get_increment() for _ in range(int(count))])


def cache_compute(bucket: key_value.Bucket, scope: str, key: str, seconds: str) -> None:
    def compute() -> str:
        bucket.increment("calls/" + key)
        time.sleep(float(seconds))
        return "computed by a guest"

    try:
        say({"value": Cache(bucket, scope).get_or_compute(key, compute, wait_timeout=60)})
    except CacheComputeError as exc:
        say({"error": exc.type_name, "message": exc.message})


MODES: dict[str, Callable[..., None]] = {
    "suite": suite,
    "lock-loop": lock_loop,
    "lock-hold": lock_hold,
    "get-increment": get_increment,
    "cache-compute": cache_compute,
}


class Run(wasikv_sdk.wit.exports.Run):
    def run(self) -> None:
        mode, *args = sys.argv[1:] or ["suite"]
        try:
            with key_value.open_default() as bucket:
                MODES[mode](bucket, *args)
        except Exception as exc:
            say({"exception": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()})
            raise
