"""Slow test preparations (guest builds, first compiles) run in the background, once each.

A preparation is a zero-argument function under a key. `once(key, make)`
returns its result: computed on the spot the first time, or awaited when
`start` already has it running in the background. Under `make test` the
suite's preparations start as soon as the tests are collected, on two
threads, while the tests that need no component run first (the builds are
componentize-py processes and wasmtime compiles, so they run beside Python
tests instead of before them).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_results: dict[Hashable, Future[Any]] = {}
_pool: ThreadPoolExecutor | None = None


def once(key: Hashable, make: Callable[[], T]) -> T:
    """`make()` the first time `key` is asked for (or started); its result every time."""
    with _lock:
        future = _results.get(key)
        mine = future is None
        if mine:
            future = _results[key] = Future()
    assert future is not None
    if mine:
        _settle(future, make)
    result: T = future.result()
    return result


def start(jobs: Iterable[tuple[Hashable, Callable[[], Any]]], workers: int) -> int:
    """Run every job not yet asked for on `workers` background threads; returns how many started."""
    global _pool
    started = 0
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(workers, thread_name_prefix="prebuild")
        for key, make in jobs:
            if key in _results:
                continue
            future: Future[Any] = Future()
            _results[key] = future
            _pool.submit(_settle, future, make)
            started += 1
    return started


def stop() -> None:
    """Forget the jobs no test waited for and let the running ones finish."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


def _settle(future: Future[Any], make: Callable[[], Any]) -> None:
    # A cancelled job (stop()) leaves its future pending: nobody waits on it.
    try:
        future.set_result(make())
    except BaseException as exc:  # re-raised in the test that asks for it
        future.set_exception(exc)
