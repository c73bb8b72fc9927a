"""Conformance guest: exercises every wasi:keyvalue function through the raw bindings.

Usage: `<component> conformance SCENARIO [ARGS...]` (see app.py).
Prints exactly one JSON line of observations to stdout. Outcomes of calls are
recorded as `{"ok": VALUE}` or an error object:

- `{"err": "no-such-store"}`, `{"err": "access-denied"}`,
- `{"err": "other", "msg": "..."}`,
- `{"err": "cas-failed"}`, `{"err": "store-error", "inner": <store error object>}` (swap only).

Values (bytes) are recorded as latin-1 decoded strings (None stays null).
An unexpected Python exception is reported as `{"scenario": ..., "exception": "..."}`
and the run fails (exit status 1).
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import traceback
from collections.abc import Callable
from typing import Any

from componentize_py_types import Err

import wasikv_sdk.wit.exports
from wasikv_sdk.wit.imports import atomics, batch
from wasikv_sdk.wit.imports import wasi_keyvalue_store as store

Outcome = dict[str, Any]


def describe(error: Any) -> Outcome:
    """The JSON form of a WIT error value."""
    if isinstance(error, store.Error_NoSuchStore):
        return {"err": "no-such-store"}
    if isinstance(error, store.Error_AccessDenied):
        return {"err": "access-denied"}
    if isinstance(error, store.Error_Other):
        return {"err": "other", "msg": error.value}
    if isinstance(error, atomics.CasError_CasFailed):
        return {"err": "cas-failed"}
    if isinstance(error, atomics.CasError_StoreError):
        return {"err": "store-error", "inner": describe(error.value)}
    return {"err": "unknown", "repr": repr(error)}


def text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


def attempt(fn: Callable[[], Any], convert: Callable[[Any], Any] = lambda v: v) -> Outcome:
    """Run one call; `{"ok": convert(result)}` or the error object."""
    try:
        result = fn()
    except Err as e:
        return describe(e.value)
    return {"ok": convert(result)}


def release(resource: Any) -> None:
    """Drop a handle (a bucket, or a cas handle that was not passed to swap)."""
    resource.__exit__(None, None, None)


def open_default() -> Any:
    return store.open("default")


class Swapper:
    """Runs `atomics.swap`, keeping track of who owns which cas handle."""

    def __init__(self) -> None:
        self.fresh: Any = None

    def swap(self, handle: Any, value: bytes) -> Outcome:
        # The handle is moved into swap: never drop it afterwards.
        try:
            atomics.swap(handle, value)
        except Err as e:
            if isinstance(e.value, atomics.CasError_CasFailed):
                self.fresh = e.value.value
            return describe(e.value)
        return {"ok": None}

    def take_fresh(self) -> Any:
        fresh, self.fresh = self.fresh, None
        return fresh

    def drop_fresh(self) -> None:
        fresh = self.take_fresh()
        if fresh is not None:
            release(fresh)


def get_text(bucket: Any, key: str) -> Outcome:
    return attempt(lambda: bucket.get(key), text)


def walk(bucket: Any, max_pages: int) -> tuple[list[list[str]], Outcome | None]:
    """Every page of list-keys from the start; a store error ends the walk."""
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        if len(pages) >= max_pages:
            return pages, {"err": "walk", "msg": f"more than {max_pages} pages"}
        try:
            response = bucket.list_keys(cursor)
        except Err as e:
            return pages, describe(e.value)
        pages.append(list(response.keys))
        cursor = response.cursor
        if cursor is None:
            return pages, None


# -- scenarios --------------------------------------------------------------------------------------


def scenario_open(label: str) -> Outcome:
    try:
        bucket = store.open(label)
    except Err as e:
        return {"open": describe(e.value)}
    release(bucket)
    return {"open": {"ok": True}}


def open_unknown(args: list[str]) -> Outcome:
    return scenario_open("nope")


def open_denied(args: list[str]) -> Outcome:
    return scenario_open("secret")


def basic(args: list[str]) -> Outcome:
    out: Outcome = {}
    with open_default() as b:
        out["get_missing"] = get_text(b, "k")
        out["exists_missing"] = attempt(lambda: b.exists("k"))
        out["set"] = attempt(lambda: b.set("k", b"v1"))
        out["get"] = get_text(b, "k")
        out["exists"] = attempt(lambda: b.exists("k"))
        out["overwrite"] = attempt(lambda: b.set("k", b"v2"))
        out["get_overwritten"] = get_text(b, "k")
        out["set_empty"] = attempt(lambda: b.set("empty", b""))
        out["get_empty"] = get_text(b, "empty")
        out["exists_empty"] = attempt(lambda: b.exists("empty"))
        out["delete_missing"] = attempt(lambda: b.delete("never-set"))
        out["delete"] = attempt(lambda: b.delete("k"))
        out["get_deleted"] = get_text(b, "k")
        out["exists_deleted"] = attempt(lambda: b.exists("k"))
        binary = bytes(range(256))
        out["set_binary"] = attempt(lambda: b.set("binary", binary))
        out["binary_roundtrip"] = attempt(lambda: b.get("binary") == binary)
        unicode: dict[str, Outcome] = {}
        for key in ("ключ", "🔑", ""):
            value = key.encode("utf-8") + b"!"
            entry: Outcome = {
                "set": attempt(lambda k=key, v=value: b.set(k, v)),
                "get_matches": attempt(lambda k=key, v=value: b.get(k) == v),
                "exists": attempt(lambda k=key: b.exists(k)),
            }
            unicode[key] = entry
        out["unicode"] = unicode
        pages, error = walk(b, 1000)
        out["listed"] = sorted(key for page in pages for key in page)
        out["list_error"] = error
    return out


def list_scenario(args: list[str]) -> Outcome:
    page_size, count = int(args[0]), int(args[1])
    names = [f"key-{i:06d}" for i in range(count)]
    order = names[:]
    random.Random(20240601).shuffle(order)
    out: Outcome = {"page_size": page_size, "n": count}
    with open_default() as b:
        write_errors = []
        for name in order:
            result = attempt(lambda k=name: b.set(k, k.encode("ascii")))
            if "err" in result:
                write_errors.append(result)
        out["write_errors"] = write_errors[:5]
        pages, error = walk(b, count + 10)
        listed = [key for page in pages for key in page]
        sizes = [len(page) for page in pages]
        out["page_sizes"] = sizes
        out["pages"] = len(pages)
        out["total"] = len(listed)
        out["sorted"] = listed == sorted(listed)
        out["unique"] = len(listed) == len(set(listed))
        out["equals_written"] = set(listed) == set(names) and len(listed) == len(names)
        out["within_page_size"] = all(size <= page_size for size in sizes)
        out["nonfinal_pages_full"] = all(size == page_size for size in sizes[:-1])
        out["walk_error"] = error
        out["garbage_cursor"] = attempt(lambda: b.list_keys("garbage!"), lambda r: list(r.keys))
    return out


def increment(args: list[str]) -> Outcome:
    out: Outcome = {}
    with open_default() as b:

        def inc(key: str, delta: int) -> Outcome:
            return attempt(lambda: atomics.increment(b, key, delta))

        out["inc_missing"] = inc("n", 5)
        out["get_after_missing"] = get_text(b, "n")
        out["inc_negative"] = inc("n", -7)
        out["get_negative"] = get_text(b, "n")
        out["set_100"] = attempt(lambda: b.set("n", b"100"))
        out["inc_100"] = inc("n", 1)
        out["get_101"] = get_text(b, "n")
        out["set_abc"] = attempt(lambda: b.set("abc", b"abc"))
        out["inc_abc"] = inc("abc", 1)
        out["get_abc"] = get_text(b, "abc")
        out["set_max"] = attempt(lambda: b.set("max", b"9223372036854775807"))
        out["inc_max"] = inc("max", 1)
        out["get_max"] = get_text(b, "max")
        out["set_min"] = attempt(lambda: b.set("min", b"-9223372036854775808"))
        out["inc_min"] = inc("min", -1)
        out["get_min"] = get_text(b, "min")
        out["set_007"] = attempt(lambda: b.set("007", b"007"))
        out["inc_007"] = inc("007", 1)
        out["get_007"] = get_text(b, "007")
    return out


def cas(args: list[str]) -> Outcome:
    out: Outcome = {}
    swapper = Swapper()
    with open_default() as b:
        # 1. A handle on a missing key: current is none, swap creates the key.
        case: Outcome = {}
        try:
            h = atomics.Cas.new(b, "c1")
        except Err as e:
            case["new"] = describe(e.value)
        else:
            case["new"] = {"ok": True}
            case["current"] = attempt(h.current, text)
            case["swap"] = swapper.swap(h, b"one")
            swapper.drop_fresh()
        case["get"] = get_text(b, "c1")
        out["missing_create"] = case

        # 2. A -> B -> A between new and swap: the version changed, so swap fails even
        #    though the bytes are equal; the fresh handle sees the latest value and wins.
        out["aba"] = changed_between(b, swapper, "c2", b"A", [b"B", b"A"])

        # 3. Rewriting the same bytes also counts as a change.
        out["same_bytes"] = changed_between(b, swapper, "c3", b"S", [b"S"])

        # 4. Existing key deleted between new and swap.
        case = {}
        case["set"] = attempt(lambda: b.set("c4", b"v"))
        try:
            h = atomics.Cas.new(b, "c4")
        except Err as e:
            case["new"] = describe(e.value)
        else:
            case["new"] = {"ok": True}
            case["current"] = attempt(h.current, text)
            case["delete"] = attempt(lambda: b.delete("c4"))
            case["swap"] = swapper.swap(h, b"w")
            fresh = swapper.take_fresh()
            if fresh is not None:
                case["fresh_current"] = attempt(fresh.current, text)
                release(fresh)  # dropped unused
        case["get"] = get_text(b, "c4")
        out["deleted"] = case

        # 5. Missing key created between new and swap.
        case = {}
        try:
            h = atomics.Cas.new(b, "c5")
        except Err as e:
            case["new"] = describe(e.value)
        else:
            case["new"] = {"ok": True}
            case["current"] = attempt(h.current, text)
            case["set"] = attempt(lambda: b.set("c5", b"x"))
            case["swap"] = swapper.swap(h, b"y")
            fresh = swapper.take_fresh()
            if fresh is not None:
                case["fresh_current"] = attempt(fresh.current, text)
                case["fresh_swap"] = swapper.swap(fresh, b"z")
                swapper.drop_fresh()
        case["get"] = get_text(b, "c5")
        out["created"] = case
    return out


def changed_between(b: Any, swapper: Swapper, key: str, initial: bytes, writes: list[bytes]) -> Outcome:
    case: Outcome = {"set": attempt(lambda: b.set(key, initial))}
    try:
        h = atomics.Cas.new(b, key)
    except Err as e:
        case["new"] = describe(e.value)
        return case
    case["new"] = {"ok": True}
    case["current"] = attempt(h.current, text)
    case["writes"] = [attempt(lambda v=value: b.set(key, v)) for value in writes]
    case["swap"] = swapper.swap(h, b"X")
    fresh = swapper.take_fresh()
    if fresh is not None:
        case["fresh_current"] = attempt(fresh.current, text)
        case["fresh_swap"] = swapper.swap(fresh, b"Y")
        swapper.drop_fresh()
    case["get"] = get_text(b, key)
    return case


def pairs(entries: list[tuple[str, bytes | None]]) -> list[list[Any]]:
    return [[key, text(value)] for key, value in entries]


def batch_scenario(args: list[str]) -> Outcome:
    out: Outcome = {}
    with open_default() as b:
        out["set_many"] = attempt(lambda: batch.set_many(b, [("k1", b"v1"), ("k2", b"v2"), ("k3", b"v3")]))
        out["get_many"] = attempt(lambda: batch.get_many(b, ["k1", "missing", "k3", "k1"]), pairs)
        out["delete_many"] = attempt(lambda: batch.delete_many(b, ["k1", "missing"]))
        out["get_many_after"] = attempt(lambda: batch.get_many(b, ["k1", "k2", "k3"]), pairs)
        out["get_many_empty"] = attempt(lambda: batch.get_many(b, []), pairs)
        out["set_many_empty"] = attempt(lambda: batch.set_many(b, []))
        out["delete_many_empty"] = attempt(lambda: batch.delete_many(b, []))
        out["get_after"] = {key: get_text(b, key) for key in ("k1", "k2", "k3")}
    return out


def limits(args: list[str]) -> Outcome:
    out: Outcome = {}
    with open_default() as b:
        out["key_max"] = attempt(lambda: b.set("k" * 64, b"v"))
        out["key_too_long"] = attempt(lambda: b.set("k" * 65, b"v"))
        out["key_too_long_get"] = attempt(lambda: b.get("k" * 65), text)
        # 33 two-byte characters: 66 bytes, so the limit must count UTF-8 bytes.
        out["key_too_long_utf8"] = attempt(lambda: b.set("ю" * 33, b"v"))
        out["value_max"] = attempt(lambda: b.set("v", b"x" * 1024))
        out["value_too_big"] = attempt(lambda: b.set("v", b"x" * 1025))
        ten = [f"b{i}" for i in range(10)]
        eleven = [f"b{i}" for i in range(11)]
        out["batch_max"] = attempt(lambda: batch.get_many(b, ten), len)
        out["batch_too_many_get"] = attempt(lambda: batch.get_many(b, eleven), len)
        out["batch_too_many_set"] = attempt(lambda: batch.set_many(b, [(k, b"v") for k in eleven]))
        out["batch_too_many_delete"] = attempt(lambda: batch.delete_many(b, eleven))
        out["batch_key_too_long"] = attempt(lambda: batch.get_many(b, ["k" * 65]), len)
        out["set_many_value_too_big"] = attempt(lambda: batch.set_many(b, [("v", b"x" * 1025)]))

    # Open buckets: nothing else is open now.
    buckets: list[Any] = []
    opened: list[Outcome] = []
    for _ in range(5):
        try:
            buckets.append(store.open("default"))
            opened.append({"ok": True})
        except Err as e:
            opened.append(describe(e.value))
    out["open_buckets"] = opened
    if buckets:
        release(buckets.pop())
    out["open_after_drop"] = scenario_open("default")["open"]
    for bucket in buckets:
        release(bucket)

    # Cas handles, on one bucket.
    with open_default() as b:
        handles: list[Any] = []
        created: list[Outcome] = []
        for i in range(5):
            try:
                handles.append(atomics.Cas.new(b, f"cas{i}"))
                created.append({"ok": True})
            except Err as e:
                created.append(describe(e.value))
        out["cas_handles"] = created
        if handles:
            release(handles.pop())
        try:
            handles.append(atomics.Cas.new(b, "cas-after-drop"))
            out["cas_after_drop"] = {"ok": True}
        except Err as e:
            out["cas_after_drop"] = describe(e.value)
        for handle in handles:
            release(handle)
    return out


def bigvalue(args: list[str]) -> Outcome:
    size = int(args[0])
    pattern = bytes(range(256))
    value = (pattern * (size // 256 + 1))[:size]
    out: Outcome = {"size": size}
    with open_default() as b:
        out["set"] = attempt(lambda: b.set("big", value))

        def summary(got: bytes | None) -> Outcome | None:
            if got is None:
                return None
            return {"len": len(got), "sha256_equal": hashlib.sha256(got).digest() == expected}

        expected = hashlib.sha256(value).digest()
        out["get"] = attempt(lambda: b.get("big"), summary)
    return out


def counter_loop(args: list[str]) -> Outcome:
    count = int(args[0])
    errors: list[Outcome] = []
    error_count = 0
    last: int | None = None
    with open_default() as b:
        for _ in range(count):
            try:
                last = atomics.increment(b, "counter", 1)
            except Err as e:
                error_count += 1
                if len(errors) < 5:
                    errors.append(describe(e.value))
        final = get_text(b, "counter")
    return {"n": count, "last": last, "final": final, "error_count": error_count, "errors": errors}


def counter_ack(args: list[str]) -> Outcome:
    """Increment "counter" up to N times, printing each acknowledged value at once.

    Used by the kill -9 test: every printed value was committed before it
    was printed, so none may be missing after the host is killed.
    """
    count = int(args[0])
    with open_default() as b:
        for _ in range(count):
            value = atomics.increment(b, "counter", 1)
            sys.stdout.write(f"{value}\n")
            sys.stdout.flush()
    return {"n": count}


def cas_loop(args: list[str]) -> Outcome:
    count = int(args[0])
    key = "cas-counter"
    retries = 0
    done = 0
    errors: list[Outcome] = []
    error_count = 0
    last: int | None = None

    def failed(outcome: Outcome) -> None:
        nonlocal error_count
        error_count += 1
        if len(errors) < 5:
            errors.append(outcome)

    with open_default() as b:
        for _ in range(count):
            try:
                handle: Any = atomics.Cas.new(b, key)
            except Err as e:
                failed(describe(e.value))
                continue
            for _try in range(100_000):
                try:
                    current = handle.current()
                except Err as e:
                    failed(describe(e.value))
                    release(handle)
                    handle = None
                    break
                new = (0 if current is None else int(current)) + 1
                pinned, handle = handle, None
                try:
                    atomics.swap(pinned, str(new).encode("ascii"))
                except Err as e:
                    if isinstance(e.value, atomics.CasError_CasFailed):
                        retries += 1
                        handle = e.value.value  # reuse the fresh handle
                        continue
                    failed(describe(e.value))
                    break
                done += 1
                last = new
                break
            else:
                failed({"err": "gave-up"})
            if handle is not None:
                release(handle)
        final = get_text(b, key)
    return {
        "n": count,
        "done": done,
        "retries": retries,
        "last": last,
        "final": final,
        "error_count": error_count,
        "errors": errors,
    }


SCENARIOS: dict[str, Callable[[list[str]], Outcome]] = {
    "open-unknown": open_unknown,
    "open-denied": open_denied,
    "basic": basic,
    "list": list_scenario,
    "increment": increment,
    "cas": cas,
    "batch": batch_scenario,
    "limits": limits,
    "bigvalue": bigvalue,
    "counter-loop": counter_loop,
    "counter-ack": counter_ack,
    "cas-loop": cas_loop,
}


def emit(record: Outcome) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


class Run(wasikv_sdk.wit.exports.Run):
    def run(self) -> None:
        args = sys.argv[1:]
        name = args[0] if args else ""
        scenario = SCENARIOS.get(name)
        if scenario is None:
            emit({"scenario": name, "exception": f"unknown scenario {name!r}; known: {sorted(SCENARIOS)}"})
            raise Err(None)
        try:
            record = {"scenario": name, **scenario(args[1:])}
        except Err as e:  # a call outside `attempt` failed
            emit({"scenario": name, "exception": "Err", "error": describe(e.value)})
            raise Err(None) from None
        except Exception as e:  # report instead of trapping, then fail the run
            detail = "".join(traceback.format_exception(e))
            emit({"scenario": name, "exception": f"{type(e).__name__}: {e}", "traceback": detail})
            raise Err(None) from None
        emit(record)
