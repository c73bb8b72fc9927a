"""A bounded pool of worker threads for guest calls.

Unlike `concurrent.futures.ThreadPoolExecutor`, it refuses work instead of
queueing it without bound (`Overloaded` once `queue_limit` tasks wait), a
waiting task can be withdrawn (its request's deadline passed before a worker
was free), and it can write off a worker whose task overran its deadline while
blocked in a host call that epoch interruption cannot stop (a guest's
`time.sleep`, an outbound request to a silent server): a replacement thread
starts at once so `workers` threads keep serving, and the stuck thread exits
when its task finally returns. Each stuck thread still holds its guest's
instance, so at most `max_written_off` are replaced at once; past that a
stuck worker is not replaced until one returns. Threads are daemons, so a
stuck one never holds up the process at exit.

Tasks travel through a `queue.SimpleQueue`, as in the standard executor: a
finished task wakes nobody, and a new one wakes exactly one idle worker.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

_Task = tuple[Future[Any], Callable[[], Any]] | None

#: Stuck workers replaced at once, per worker, unless told otherwise.
WRITTEN_OFF_PER_WORKER = 8


class Overloaded(Exception):
    """Every worker is busy and the queue is full."""


class WorkerPool:
    """`workers` daemon threads running submitted calls in order, with at most `queue_limit` waiting.

    `on_written_off` is called (with the pool's lock held: keep it short)
    with the number of written-off workers whenever it changes.
    """

    def __init__(
        self,
        workers: int,
        queue_limit: int,
        *,
        max_written_off: int | None = None,
        name: str = "wasikv",
        on_written_off: Callable[[int], None] | None = None,
    ) -> None:
        if workers < 1 or queue_limit < 0:
            raise ValueError("a worker pool needs at least one worker and a queue limit >= 0")
        if max_written_off is not None and max_written_off < 0:
            raise ValueError("max_written_off must be >= 0")
        self.workers = workers
        self.queue_limit = queue_limit
        #: Stuck workers replaced at most at once; past it, a stuck worker is not replaced.
        if max_written_off is None:
            max_written_off = WRITTEN_OFF_PER_WORKER * workers
        self.max_written_off = max_written_off
        #: Workers written off since the pool started.
        self.written_off_total = 0
        self._name = name
        self._on_written_off = on_written_off
        self._tasks: queue.SimpleQueue[_Task] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._finished = threading.Condition(self._lock)
        self._waiting = 0  # submitted, not yet taken by a worker nor withdrawn
        self._idle = 0  # workers blocked waiting for a task
        self._running: dict[Future[Any], int] = {}
        self._written_off: set[int] = set()
        self._threads = 0
        self._closed = False
        self._serial = 0
        for _ in range(workers):
            self._spawn()

    @property
    def waiting(self) -> int:
        """Tasks submitted and not yet started."""
        return self._waiting

    @property
    def full(self) -> bool:
        """Whether `submit` would raise `Overloaded` now."""
        return self._waiting - self._idle >= self.queue_limit

    @property
    def written_off(self) -> int:
        """Workers currently written off (their tasks still running)."""
        return len(self._written_off)

    def submit(self, call: Callable[[], Any]) -> Future[Any]:
        """Queue `call`; raises `Overloaded` if `queue_limit` tasks are already waiting."""
        future: Future[Any] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the worker pool is shut down")
            if self.full:
                raise Overloaded(f"all {self.workers} workers are busy and {self._waiting} requests wait")
            self._waiting += 1
        self._tasks.put((future, call))
        return future

    def withdraw(self, future: Future[Any]) -> bool:
        """Cancel `future`'s task if no worker has started it; True if it will never run."""
        with self._lock:
            if not future.cancel():
                return False
            self._waiting -= 1
            return True

    def write_off(self, future: Future[Any]) -> bool:
        """Give up on the worker running `future` and start a replacement; False if none was started.

        None is started when `future` is not running (any more), was
        written off already, or `max_written_off` workers are stuck now.
        """
        with self._lock:
            ident = self._running.get(future)
            if ident is None or ident in self._written_off or len(self._written_off) >= self.max_written_off:
                return False
            self._written_off.add(ident)
            self.written_off_total += 1
            self._notify_written_off()
            if not self._closed:
                self._spawn()
            return True

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Refuse new work, cancel waiting tasks, wait up to `timeout` for running ones; True if all ended.

        Written-off workers are not waited for.
        """
        with self._lock:
            self._closed = True
            threads = self._threads
        while True:
            try:
                task = self._tasks.get_nowait()
            except queue.Empty:
                break
            if task is not None:
                self.withdraw(task[0])
        for _ in range(threads):
            self._tasks.put(None)
        end = time.monotonic() + timeout
        with self._finished:
            while len(self._running) > len(self._written_off):
                remaining = end - time.monotonic()
                if remaining <= 0:
                    return False
                self._finished.wait(remaining)
        return True

    # -- the threads ---------------------------------------------------------

    def _spawn(self) -> None:
        # Called with the lock held.
        self._serial += 1
        self._threads += 1
        thread = threading.Thread(target=self._work, name=f"{self._name}-{self._serial}", daemon=True)
        thread.start()

    def _notify_written_off(self) -> None:
        # Called with the lock held.
        if self._on_written_off is not None:
            self._on_written_off(len(self._written_off))

    def _work(self) -> None:
        ident = threading.get_ident()
        while True:
            with self._lock:
                self._idle += 1
            task = self._tasks.get()
            with self._lock:
                self._idle -= 1
                if task is None:
                    self._threads -= 1
                    return
                future, call = task
                # A withdrawn task was taken off the count when it was withdrawn.
                if not future.set_running_or_notify_cancel():
                    continue
                self._waiting -= 1
                self._running[future] = ident
            try:
                future.set_result(call())
            except BaseException as exc:
                future.set_exception(exc)
            with self._lock:
                del self._running[future]
                if self._closed:
                    self._finished.notify_all()
                if ident in self._written_off:
                    # A replacement took this thread's place long ago.
                    self._written_off.discard(ident)
                    self._notify_written_off()
                    self._threads -= 1
                    return


__all__ = ["WRITTEN_OFF_PER_WORKER", "Overloaded", "WorkerPool"]
