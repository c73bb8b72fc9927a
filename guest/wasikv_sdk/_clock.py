"""Time for the coordination primitives: wall clock, bounded waits, backoff.

Pure Python. In a guest, `time.time()` and `time.monotonic()` are served by
wasi:clocks (wall-clock and monotonic-clock) and `time.sleep()` blocks on a
wasi:clocks pollable; componentize-py 0.25 supports all three. `sleep` still
falls back to a busy wait on the monotonic clock if `time.sleep` ever raises
(a runtime without sleeping), so every wait keeps working and stays bounded.

Two clocks, two purposes:

- `now()` (wall clock) is what expiry timestamps stored in the bucket are
  written and compared in, because other processes and hosts read them.
- `monotonic()` bounds how long this process waits; it never jumps.
"""

from __future__ import annotations

import random
import time

__all__ = ["Backoff", "Deadline", "monotonic", "now", "sleep"]

_sleep_works = True


def now() -> float:
    """Seconds since the Unix epoch, from the wall clock (shared meaning across hosts)."""
    return time.time()


def monotonic() -> float:
    """A local clock that never goes backwards, for bounding waits."""
    return time.monotonic()


def sleep(seconds: float) -> None:
    """Block for `seconds` (nothing for zero or less)."""
    global _sleep_works
    if seconds <= 0:
        return
    if _sleep_works:
        try:
            time.sleep(seconds)
            return
        except (OSError, NotImplementedError):
            _sleep_works = False
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


class Deadline:
    """A point in monotonic time `timeout` seconds from now."""

    def __init__(self, timeout: float) -> None:
        if timeout < 0:
            raise ValueError(f"timeout must not be negative, not {timeout}")
        self.timeout = timeout
        self._end = monotonic() + timeout

    def remaining(self) -> float:
        """Seconds left (0 once passed)."""
        return max(0.0, self._end - monotonic())

    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return monotonic() >= self._end


class Backoff:
    """Exponentially growing, jittered delays: `initial`, then times `factor` up to `maximum`.

    Each delay is drawn uniformly from the upper half of the current step, so
    processes that collided once do not keep colliding in lockstep.
    """

    def __init__(self, initial: float, maximum: float, factor: float = 2.0) -> None:
        if initial < 0 or maximum < 0:
            raise ValueError("backoff delays must not be negative")
        if factor < 1:
            raise ValueError("the backoff factor must be at least 1")
        self.initial = initial
        self.maximum = max(initial, maximum)
        self.factor = factor
        self._step = initial

    def next(self) -> float:
        """The next delay in seconds."""
        step = self._step
        self._step = min(self.maximum, step * self.factor)
        return random.uniform(step / 2, step)

    def wait(self, deadline: Deadline | None = None) -> None:
        """Sleep the next delay, never past `deadline`."""
        delay = self.next()
        if deadline is not None:
            delay = min(delay, deadline.remaining())
        sleep(delay)
