"""A watcher for the trigger tests: records every change it is told about.

Each change is appended, via a compare-and-swap update, to a JSON list under
the key `log` in the store labelled `seen` (which must not be the watched
store). A key or value starting with a directive changes the behaviour:

- `trap/...` keys trap the instance (the wasm stack overflows),
- `raise/...` keys raise an exception from the watcher,
- `flaky/...` keys fail until the counter `attempts/<key>` in `seen` reaches 3,
- `slow/...` keys sleep for a second before recording,
- `variables/...` keys record the watcher's variables (wasi:config) too.
"""

import json
import sys
import time

from wasikv_sdk import key_value, variables

CALLS_IN_THIS_INSTANCE = 0


def _record(entry: dict) -> None:
    global CALLS_IN_THIS_INSTANCE
    CALLS_IN_THIS_INSTANCE += 1
    entry["calls_in_instance"] = CALLS_IN_THIS_INSTANCE

    def append(old: bytes | None) -> bytes:
        items = json.loads(old) if old else []
        items.append(entry)
        return json.dumps(items).encode()

    with key_value.open("seen") as seen:
        seen.update("log", append)


def _directives(key: str) -> None:
    if key.startswith("trap/"):
        # repr recurses in C: the wasm stack overflows at once (a genuine trap).
        sys.setrecursionlimit(10**9)
        nested: list = []
        for _ in range(10**6):
            nested = [nested]
        repr(nested)
    if key.startswith("raise/"):
        raise RuntimeError(f"watcher failed on purpose for {key}")
    if key.startswith("flaky/"):
        with key_value.open("seen") as seen:
            if seen.increment(f"attempts/{key}") < 3:
                raise RuntimeError(f"flaky failure for {key}")
    if key.startswith("slow/"):
        time.sleep(1.0)


def on_set(bucket: key_value.Bucket, key: str, value: bytes) -> None:
    """Record a set (after the key's directive, if any)."""
    _directives(key)
    current = bucket.get(key)
    entry = {
        "op": "set",
        "label": bucket.label,
        "key": key,
        "value": value.decode("utf-8", "replace"),
        "current": None if current is None else current.decode("utf-8", "replace"),
    }
    if key.startswith("variables/"):
        entry["variables"] = variables.get_all()
    _record(entry)


def on_delete(bucket: key_value.Bucket, key: str) -> None:
    """Record a delete (after the key's directive, if any)."""
    _directives(key)
    _record({"op": "delete", "label": bucket.label, "key": key, "exists": bucket.exists(key)})
