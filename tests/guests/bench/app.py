"""Benchmark guest: times wasi:keyvalue calls from inside the component.

argv: [prog, OP, ITERATIONS]; prints one JSON line {"op", "iterations", "us_per_call"}.
Timing inside the guest measures the host call path without instantiation.
"""

import json
import sys
import time

from wasikv_sdk.wit import exports
from wasikv_sdk.wit.imports import atomics, batch
from wasikv_sdk.wit.imports import wasi_keyvalue_store as store

SMALL = bytes(range(100))
MIB = bytes(range(256)) * 4096


def _exists(bucket: store.Bucket, n: int) -> None:
    for _ in range(n):
        bucket.exists("bench-small")


def _get(bucket: store.Bucket, n: int) -> None:
    for _ in range(n):
        bucket.get("bench-small")


def _set(bucket: store.Bucket, n: int) -> None:
    for _ in range(n):
        bucket.set("bench-small", SMALL)


def _increment(bucket: store.Bucket, n: int) -> None:
    for _ in range(n):
        atomics.increment(bucket, "bench-counter", 1)


def _cas(bucket: store.Bucket, n: int) -> None:
    for _ in range(n):
        cas = atomics.Cas.new(bucket, "bench-small")
        cas.current()
        atomics.swap(cas, SMALL)


def _get_many(bucket: store.Bucket, n: int) -> None:
    keys = [f"bench-many-{i}" for i in range(100)]
    for _ in range(n):
        batch.get_many(bucket, keys)


def _get_1mib(bucket: store.Bucket, n: int) -> None:
    for _ in range(n):
        bucket.get("bench-big")


def _set_1mib(bucket: store.Bucket, n: int) -> None:
    for _ in range(n):
        bucket.set("bench-big", MIB)


def _compute(_bucket: store.Bucket, n: int) -> None:
    # Pure guest work, no host call: what epoch checks cost the guest.
    for _ in range(n):
        sum(i * i for i in range(1000))


OPS = {
    "compute": _compute,
    "exists": _exists,
    "get": _get,
    "set": _set,
    "increment": _increment,
    "cas": _cas,
    "get-many": _get_many,
    "get-1mib": _get_1mib,
    "set-1mib": _set_1mib,
}


class Run(exports.Run):
    def run(self) -> None:
        op, iterations = sys.argv[1], int(sys.argv[2])
        bucket = store.open("default")
        bucket.set("bench-small", SMALL)
        bucket.set("bench-big", MIB)
        batch.set_many(bucket, [(f"bench-many-{i}", SMALL) for i in range(100)])
        OPS[op](bucket, 1)  # warm up
        start = time.perf_counter()
        OPS[op](bucket, iterations)
        elapsed = time.perf_counter() - start
        print(json.dumps({"op": op, "iterations": iterations, "us_per_call": elapsed / iterations * 1e6}))
