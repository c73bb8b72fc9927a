"""Counters: every method's result, and atomicity under threads, processes and guests."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import Counter as Tally

import pytest

from wasikv import Bucket
from wasikv_sdk.coordination import CorruptRecord
from wasikv_sdk.counters import KEY_PREFIX, Counter, all_counters

from ..support import ROOT
from .conftest import OpenBucket, finish, spawn_guest, spawn_worker


def test_every_method_returns_what_it_documents(bucket: Bucket) -> None:
    c = Counter(bucket, "hits")
    assert c.key == KEY_PREFIX + "hits"
    assert c.get() == 0  # missing reads 0
    assert c.increment() == 1
    assert c.increment(5) == 6
    assert c.increment(-2) == 4
    assert c.get_increment() == 4
    assert c.get() == 5
    assert c.get_increment(10) == 5
    assert c.get() == 15
    assert c.get_set(3) == 15
    assert c.get() == 3
    assert c.set(-7) == -7
    assert c.get() == -7
    assert bucket.get(c.key) == b"-7"  # the wasi:keyvalue counter format
    assert bucket.increment(c.key) == -6  # interoperates with plain increments
    assert Counter(bucket, "fresh").get_set(9) == 0
    assert Counter(bucket, "fresh2").get_increment() == 0
    c.delete()
    assert c.get() == 0


def test_all_counters(bucket: Bucket) -> None:
    for name, value in [("a/1", 1), ("a/2", 2), ("b", 3)]:
        Counter(bucket, name).set(value)
    bucket.set("unrelated", b"not a counter")
    assert all_counters(bucket) == {"a/1": 1, "a/2": 2, "b": 3}
    assert all_counters(bucket, "a/") == {"a/1": 1, "a/2": 2}
    assert all_counters(bucket, "zzz") == {}
    snapshot = all_counters(bucket)
    Counter(bucket, "b").increment()
    assert snapshot["b"] == 3  # a copy


def test_bad_values_are_refused(bucket: Bucket) -> None:
    c = Counter(bucket, "bad")
    bucket.set(c.key, b"12abc")
    with pytest.raises(CorruptRecord):
        c.get()
    with pytest.raises(CorruptRecord):
        c.get_set(1)
    with pytest.raises(ValueError, match="64-bit"):
        c.set(2**63)
    with pytest.raises(TypeError):
        c.set(1.5)  # type: ignore[arg-type]


def test_get_increment_is_distinct_across_threads(sqlite_url: str, open_bucket: OpenBucket) -> None:
    bucket = open_bucket(sqlite_url)
    threads, each = 8, 50
    seen: list[list[int]] = [[] for _ in range(threads)]
    start = threading.Barrier(threads)

    def work(index: int) -> None:
        counter = Counter(bucket, "tickets")
        start.wait()
        seen[index] = [counter.get_increment() for _ in range(each)]

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    everything = [v for values in seen for v in values]
    assert sorted(everything) == list(range(threads * each))
    assert Counter(bucket, "tickets").get() == threads * each


def test_get_set_loses_and_duplicates_nothing_across_threads(
    sqlite_url: str, open_bucket: OpenBucket
) -> None:
    # Every value written is returned as "previous" by exactly one later get_set, except the last one.
    bucket = open_bucket(sqlite_url)
    threads, each = 6, 30
    returned: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def work(index: int) -> None:
        counter = Counter(bucket, "swap")
        start.wait()
        for n in range(each):
            previous = counter.get_set(1000 * (index + 1) + n)
            with lock:
                returned.append(previous)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    written = [0] + [1000 * (i + 1) + n for i in range(threads) for n in range(each)]
    final = Counter(bucket, "swap").get()
    assert Tally([*returned, final]) == Tally(written)


@pytest.mark.slow
def test_get_increment_is_distinct_across_processes_and_guests(sqlite_url: str) -> None:
    hosts = [spawn_worker("get-increment", sqlite_url, "tickets", "50") for _ in range(3)]
    guests = [spawn_guest(sqlite_url, "get-increment", "tickets", "50") for _ in range(2)]
    everything = [v for values in finish(hosts + guests) for v in values]
    assert sorted(everything) == list(range(250))


def test_importing_the_primitives_does_not_load_the_guest_runtime() -> None:
    code = (
        "import sys\n"
        "import wasikv_sdk, wasikv_sdk.counters, wasikv_sdk.locks, wasikv_sdk.state, wasikv_sdk.cache\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('wasikv_sdk.wit', 'wasikv_sdk.key_value',"
        " 'componentize_py', 'wasikv.', 'wasmtime')) or m == 'wasikv')\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout.strip() == ""
