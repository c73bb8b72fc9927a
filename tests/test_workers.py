"""The request worker pool: bounded queue, withdrawn tasks, stuck workers written off and replaced."""

from __future__ import annotations

import threading
from concurrent.futures import CancelledError

import pytest

from wasikv.runtime.workers import Overloaded, WorkerPool

WAIT = 10.0


def _blocker(release: threading.Event, started: threading.Semaphore) -> object:
    def call() -> str:
        started.release()
        release.wait(WAIT * 3)
        return "released"

    return call


def test_every_stuck_worker_is_replaced_so_capacity_never_shrinks() -> None:
    counts: list[int] = []
    pool = WorkerPool(2, 4, max_written_off=6, on_written_off=counts.append)
    release, started = threading.Event(), threading.Semaphore(0)
    stuck = []
    try:
        # Six tasks block one after another; each is written off once it runs.
        for _ in range(6):
            future = pool.submit(_blocker(release, started))  # type: ignore[arg-type]
            assert started.acquire(timeout=WAIT)
            assert pool.write_off(future)
            stuck.append(future)
        assert pool.written_off == 6 and pool.written_off_total == 6
        # Two workers still serve, at full width: two tasks run at once.
        barrier = threading.Barrier(2, timeout=WAIT)
        both = [pool.submit(barrier.wait) for _ in range(2)]
        assert sorted(f.result(timeout=WAIT) for f in both) == [0, 1]
        # The cap: a seventh stuck worker is not replaced.
        seventh = pool.submit(_blocker(release, started))  # type: ignore[arg-type]
        assert started.acquire(timeout=WAIT)
        assert not pool.write_off(seventh)
        assert pool.written_off == 6
    finally:
        release.set()
    for future in stuck:
        assert future.result(timeout=WAIT) == "released"
    # Stuck threads end when their calls return: none counts as written off now.
    assert pool.shutdown(timeout=WAIT)
    assert pool.written_off == 0
    assert counts[:6] == [1, 2, 3, 4, 5, 6] and counts[-1] == 0


def test_a_withdrawn_task_never_runs_and_frees_its_place() -> None:
    pool = WorkerPool(1, 1)
    release, started = threading.Event(), threading.Semaphore(0)
    ran = threading.Event()
    try:
        busy = pool.submit(_blocker(release, started))  # type: ignore[arg-type]
        assert started.acquire(timeout=WAIT)
        queued = pool.submit(ran.set)
        assert pool.full and pool.waiting == 1
        with pytest.raises(Overloaded):
            pool.submit(ran.set)
        assert pool.withdraw(queued)
        assert not pool.full and pool.waiting == 0
        with pytest.raises(CancelledError):
            queued.result(timeout=0)
        # A running task cannot be withdrawn.
        assert not pool.withdraw(busy)
        again = pool.submit(lambda: "next")
    finally:
        release.set()
    assert again.result(timeout=WAIT) == "next"
    assert busy.result(timeout=WAIT) == "released"
    assert not ran.is_set() and pool.waiting == 0


def test_shutdown_does_not_wait_for_written_off_workers() -> None:
    pool = WorkerPool(1, 1)
    release, started = threading.Event(), threading.Semaphore(0)
    try:
        future = pool.submit(_blocker(release, started))  # type: ignore[arg-type]
        assert started.acquire(timeout=WAIT)
        assert pool.write_off(future)
        assert not pool.write_off(future)  # once
        assert pool.shutdown(timeout=WAIT)
        with pytest.raises(RuntimeError, match="shut down"):
            pool.submit(lambda: None)
    finally:
        release.set()
    assert future.result(timeout=WAIT) == "released"


def test_shutdown_withdraws_waiting_tasks() -> None:
    pool = WorkerPool(1, 4)
    release, started = threading.Event(), threading.Semaphore(0)
    try:
        pool.submit(_blocker(release, started))  # type: ignore[arg-type]
        assert started.acquire(timeout=WAIT)
        queued = [pool.submit(lambda: None) for _ in range(3)]
        closer = threading.Thread(target=pool.shutdown, kwargs={"timeout": WAIT})
        closer.start()
        for future in queued:
            with pytest.raises(CancelledError):
                future.result(timeout=WAIT)
        assert pool.waiting == 0
    finally:
        release.set()
    closer.join(WAIT)
    assert not closer.is_alive()
