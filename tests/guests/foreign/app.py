"""A guest built against a foreign WIT of wasi:keyvalue (upstream draft2 or 0.2.0-draft).

The same source is built once per WIT (tests/support.foreign_guest_wasm);
the generated bindings are `wit_world`. argv[1] picks what it does, and it
prints one JSON line:

- `check BUCKET`: the store, batch and atomics checks that apply to its WIT;
- `set KEY VALUE`, `get KEY`, `incr KEY DELTA`, `keys`, `page [CURSOR]`: one
  operation, for sharing a store with guests of other WITs;
- `bench OP N BUCKET`: time N calls of OP (exists, get, set, increment,
  get-many, get-1mib, set-1mib) from inside the guest.

As a watcher it records every change it is told about under `seen/`.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import atomics, batch, store

SMALL = bytes(range(100))
MIB = bytes(range(256)) * 4096
# 0.2.0-draft has no compare-and-swap, and its cursors and increments are u64.
DRAFT = not hasattr(atomics, "Cas")


def error(exc: Err) -> dict[str, Any]:
    value = exc.value
    name = type(value).__name__.removeprefix("Error_")
    return {"error": name, "message": getattr(value, "value", None)}


def attempt(fn: Any) -> Any:
    try:
        return {"ok": fn()}
    except Err as exc:
        return error(exc)


def text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


def walk(bucket: store.Bucket) -> tuple[list[str], int, list[Any]]:
    keys: list[str] = []
    cursors: list[Any] = []
    response = bucket.list_keys(None)
    pages = 1
    keys += response.keys
    while response.cursor is not None:
        cursors.append(response.cursor)
        response = bucket.list_keys(response.cursor)
        keys += response.keys
        pages += 1
    return keys, pages, cursors


def check(label: str) -> dict[str, Any]:
    bucket = store.open(label)
    out: dict[str, Any] = {"draft": DRAFT}
    out["open_unknown"] = attempt(lambda: store.open("no-such-label") and None)
    bucket.set("a", b"1")
    out["get"] = text(bucket.get("a"))
    out["missing"] = text(bucket.get("nope"))
    out["exists"] = [bucket.exists("a"), bucket.exists("nope")]
    bucket.delete("a")
    out["deleted"] = [bucket.exists("a"), text(bucket.get("a"))]

    written = [f"page/{i:02d}" for i in range(23)]
    batch.set_many(bucket, [(key, key.encode()) for key in reversed(written)])
    keys, pages, cursors = walk(bucket)
    out["walk"] = {"keys": keys, "pages": pages, "cursor_types": sorted({type(c).__name__ for c in cursors})}
    forged = 12345 if DRAFT else "not-a-cursor"
    out["forged_cursor"] = attempt(lambda: bucket.list_keys(forged).keys)

    pairs = batch.get_many(bucket, ["page/00", "absent", "page/22"])
    out["get_many"] = [None if p is None else [p[0], text(p[1])] for p in pairs]
    batch.delete_many(bucket, written)
    out["after_delete_many"] = walk(bucket)[0]

    out["increment"] = [atomics.increment(bucket, "n", 5), atomics.increment(bucket, "n", 2)]
    if DRAFT:
        bucket.set("neg", b"-5")
        out["increment_negative"] = attempt(lambda: atomics.increment(bucket, "neg", 1))
        out["neg_after"] = text(bucket.get("neg"))
        out["increment_huge"] = attempt(lambda: atomics.increment(bucket, "n", 2**63))
        bucket.set("top", str(2**63 - 2).encode())
        out["increment_overflow"] = attempt(lambda: atomics.increment(bucket, "top", 5))
    else:
        cas = atomics.Cas.new(bucket, "n")
        out["cas_current"] = text(cas.current())
        atomics.swap(cas, b"100")
        out["after_swap"] = text(bucket.get("n"))
        out["increment_negative"] = atomics.increment(bucket, "n", -150)
    return out


def bench(op: str, n: int, label: str) -> dict[str, Any]:
    bucket = store.open(label)
    bucket.set("small", SMALL)
    bucket.set("big", MIB)
    batch.set_many(bucket, [(f"many-{i}", SMALL) for i in range(100)])
    many = [f"many-{i}" for i in range(100)]
    calls = {
        "exists": lambda: bucket.exists("small"),
        "get": lambda: bucket.get("small"),
        "set": lambda: bucket.set("small", SMALL),
        "increment": lambda: atomics.increment(bucket, "counter", 1),
        "get-many": lambda: batch.get_many(bucket, many),
        "get-1mib": lambda: bucket.get("big"),
        "set-1mib": lambda: bucket.set("big", MIB),
    }
    call = calls[op]
    call()  # warm up
    start = time.perf_counter()
    for _ in range(n):
        call()
    elapsed = time.perf_counter() - start
    return {"op": op, "iterations": n, "us_per_call": elapsed / n * 1e6}


def single(args: list[str]) -> Any:
    bucket = store.open("default")
    verb = args[0]
    if verb == "set":
        bucket.set(args[1], args[2].encode())
        return None
    if verb == "get":
        return text(bucket.get(args[1]))
    if verb == "incr":
        return attempt(lambda: atomics.increment(bucket, args[1], int(args[2])))
    if verb == "keys":
        return walk(bucket)[0]
    if verb == "page":  # one list-keys page: [keys, next cursor]
        cursor = None if len(args) < 2 else (int(args[1]) if DRAFT else args[1])
        response = bucket.list_keys(cursor)
        return [response.keys, response.cursor]
    raise ValueError(f"unknown command {verb!r}")


class Run(exports.Run):
    def run(self) -> None:
        args = sys.argv[1:]
        if args[0] == "check":
            result = check(args[1])
        elif args[0] == "bench":
            result = bench(args[1], int(args[2]), args[3])
        else:
            result = single(args)
        print(json.dumps(result), flush=True)


class Watcher(exports.Watcher):
    def on_set(self, bucket: store.Bucket, key: str, value: bytes) -> None:
        with bucket:
            bucket.set(f"seen/{key}", b"set:" + value)

    def on_delete(self, bucket: store.Bucket, key: str) -> None:
        with bucket:
            bucket.set(f"seen/{key}", b"deleted")
