"""Host-side worker processes for the primitives tests: `python -m tests.primitives.workers MODE URL ...`.

Each worker opens the store at URL through `wasikv.open_store` and a host
`Bucket` (the same protocol guests get), does one job and prints exactly one
JSON line on stdout (some print a JSON progress line first, then block until
they are killed). Run from the repository root.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from wasikv import Bucket, Limits, open_store
from wasikv_sdk.cache import Cache
from wasikv_sdk.coordination import CacheComputeError, ResourceLockedError
from wasikv_sdk.counters import Counter
from wasikv_sdk.locks import Lock
from wasikv_sdk.state import StateDictionary

#: Lock settings for the contended loops: a lease no critical section comes near, many fast tries.
LOOP_LOCK = {"ttl": 30.0, "tries": 20000, "sleep": 0.001, "max_sleep": 0.02}


def say(data: Any) -> None:
    print(json.dumps(data), flush=True)


def lock_loop(bucket: Bucket, name: str, key: str, count: str) -> None:
    """`count` lock-protected read-modify-write updates of the plain key `key` (get, +1, set)."""
    for _ in range(int(count)):
        with Lock(bucket, name, **LOOP_LOCK):  # type: ignore[arg-type]
            value = int(bucket.get(key) or b"0")
            bucket.set(key, str(value + 1).encode())
    say({"done": int(count), "pid": os.getpid()})


def lock_hold(bucket: Bucket, name: str, ttl: str) -> None:
    """Take the lock, report it, then hold it until killed."""
    lock = Lock(bucket, name, ttl=float(ttl))
    lock.acquire()
    say({"acquired": True, "expires": lock.expires, "fence": lock.fence, "token": lock.token})
    time.sleep(600)


def get_increment(bucket: Bucket, name: str, count: str) -> None:
    counter = Counter(bucket, name)
    say([counter.get_increment() for _ in range(int(count))])


def state_race(bucket: Bucket, prefix: str, token: str, rounds: str) -> None:
    """For each round, try to lock an overlapping key set of a fresh dictionary; report the rounds won."""
    mine = {"a": None, "b": None} if token.endswith("1") else {"b": None, "c": None}
    won = []
    for index in range(int(rounds)):
        try:
            StateDictionary(bucket, f"{prefix}{index}").update_locks(token, acquire=mine)
        except ResourceLockedError:
            continue
        won.append(index)
    say(won)


SLOTS = 10


def wait_for(bucket: Bucket, key: str, count: int, seconds: float = 60) -> None:
    """Wait (bounded) until the counter `key` reaches `count`: the other processes are ready."""
    deadline = time.monotonic() + seconds
    while int(bucket.get(key) or b"0") < count and time.monotonic() < deadline:
        time.sleep(0.01)


def state_writer(bucket: Bucket, name: str, count: str, readers: str = "0") -> None:
    """`count` updates: every slot to i, plus 'odd' = i when i is odd (removed when even).

    Starts once `readers` readers have announced themselves.
    """
    wait_for(bucket, f"ready/{name}", int(readers))
    state = StateDictionary(bucket, name)
    for i in range(1, int(count) + 1):
        updates = {f"slot{n}": i for n in range(SLOTS)}
        if i % 2:
            state.update_state("writer", updates={**updates, "odd": i})
        else:
            state.update_state("writer", updates=updates, removals=["odd"])
    say({"written": int(count)})


def consistent(content: dict[str, Any]) -> bool:
    """Whether a copy of the writer's dictionary shows exactly one of its updates."""
    if not content:
        return True
    values = {content.get(f"slot{n}") for n in range(SLOTS)}
    if len(values) != 1:
        return False
    (value,) = values
    if not isinstance(value, int):
        return False
    return content.get("odd") == value if value % 2 else "odd" not in content


def state_reader(bucket: Bucket, name: str, last: str, seconds: str) -> None:
    """Copy the dictionary until the writer's last update shows (or time runs out); count torn reads."""
    state = StateDictionary(bucket, name)
    reads = torn = 0
    seen: set[int] = set()
    deadline = time.monotonic() + float(seconds)
    bucket.increment(f"ready/{name}")
    while time.monotonic() < deadline:
        content = state.copy_content()
        reads += 1
        if not consistent(content):
            torn += 1
        elif content:
            seen.add(content["slot0"])
            if content["slot0"] == int(last):
                break
    say({"reads": reads, "torn": torn, "distinct": len(seen), "finished": int(last) in seen})


def cache_compute(bucket: Bucket, scope: str, key: str, seconds: str) -> None:
    """Single-flight `key`; the computation counts itself in the store and takes `seconds`."""

    def compute() -> str:
        bucket.increment("calls/" + key)
        time.sleep(float(seconds))
        return f"computed by {os.getpid()}"

    try:
        say({"value": Cache(bucket, scope).get_or_compute(key, compute, wait_timeout=60)})
    except CacheComputeError as exc:
        say({"error": exc.type_name, "message": exc.message})


def cache_hang(bucket: Bucket, scope: str, key: str, pending_ttl: str) -> None:
    """Claim `key` and never finish computing (the test kills this process)."""

    def compute() -> str:
        say({"computing": True})
        time.sleep(600)
        return "never"

    Cache(bucket, scope, pending_ttl=float(pending_ttl)).get_or_compute(key, compute)


MODES: dict[str, Callable[..., None]] = {
    "lock-loop": lock_loop,
    "lock-hold": lock_hold,
    "get-increment": get_increment,
    "state-race": state_race,
    "state-writer": state_writer,
    "state-reader": state_reader,
    "cache-compute": cache_compute,
    "cache-hang": cache_hang,
}


def main(argv: list[str]) -> None:
    mode, url, *args = argv
    store = open_store(url)
    try:
        MODES[mode](Bucket("default", store, Limits()), *args)
    finally:
        store.close()


if __name__ == "__main__":
    main(sys.argv[1:])
