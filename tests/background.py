"""Slow test preparations (guest builds, first compiles) run in the background, once each.

A preparation is a zero-argument function under a key. `once(key, make)`
returns its result: computed on the spot the first time, or awaited when a
background thread is already computing it. Under `make test` the suite's
preparations start as soon as the tests are collected (`start`), while the
tests that need no component run first: the builds are componentize-py
processes and wasmtime compiles, so they run beside Python tests instead of
before them. A test that needs a preparation still queued runs it itself
rather than wait behind the ones queued before it.

Several pytest processes (pytest-xdist workers) share the work through
`share_between_processes`: each preparation then runs under a file lock of
its own, and the process that gets the lock second finds the result on disk.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from filelock import FileLock

T = TypeVar("T")


class _Job:
    """A preparation, claimed by the first thread to start it (a background one or a test's)."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make
        self.future: Future[Any] = Future()
        self.claimed = False


_lock = threading.Lock()
_jobs: dict[Hashable, _Job] = {}
_pool: ThreadPoolExecutor | None = None
_lock_dir: Path | None = None


def share_between_processes(lock_dir: Path) -> None:
    """Run every preparation under a file lock in `lock_dir` (one per key).

    For test processes running side by side: the one that gets a key's lock
    first does the work; the others wait for it, then run the preparation
    again, which must find its result on disk and return it. Preparations
    must therefore keep their results on disk, and must not wait for one
    another (two processes could then wait for each other's locks).
    """
    global _lock_dir
    lock_dir.mkdir(parents=True, exist_ok=True)
    _lock_dir = lock_dir


@contextmanager
def exclusive(key: Hashable) -> Iterator[None]:
    """Hold `key`'s file lock: no other process runs its preparation or holds it meanwhile
    (for tests that change what the preparation left on disk, and tests that must not see that)."""
    with _process_lock(key):
        yield


def once(key: Hashable, make: Callable[[], T]) -> T:
    """`make()` the first time `key` is asked for (or started); its result every time."""
    with _lock:
        job = _jobs.get(key)
        if job is None:
            job = _jobs[key] = _Job(make)
        mine = not job.claimed
        job.claimed = True
    if mine:
        _run(key, job)
    result: T = job.future.result()
    return result


def start(jobs: Iterable[tuple[Hashable, Callable[[], Any]]], workers: int) -> int:
    """Queue every job not yet asked for on `workers` background threads; returns how many."""
    global _pool
    started = 0
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(workers, thread_name_prefix="prebuild")
        for key, make in jobs:
            if key in _jobs:
                continue
            job = _jobs[key] = _Job(make)
            _pool.submit(_claim_and_run, key, job)
            started += 1
    return started


def stop() -> None:
    """Drop the queued jobs (a later `once` still runs them) and let the running ones finish."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


def _claim_and_run(key: Hashable, job: _Job) -> None:
    with _lock:
        if job.claimed:
            return  # a test asked for it first and is running it
        job.claimed = True
    _run(key, job)


def _run(key: Hashable, job: _Job) -> None:
    try:
        with _process_lock(key):
            job.future.set_result(job.make())
    except BaseException as exc:  # re-raised in the test that asks for it
        job.future.set_exception(exc)


@contextmanager
def _process_lock(key: Hashable) -> Iterator[None]:
    if _lock_dir is None:
        yield
        return
    name = hashlib.sha256(repr(key).encode()).hexdigest()[:24]
    with FileLock(_lock_dir / f"{name}.lock"):
        yield
