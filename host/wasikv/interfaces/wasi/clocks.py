"""`wasi:clocks/monotonic-clock` 0.2: the clock and its timers, whose waits end at the instance's deadline.

`time.sleep` in a componentize-py guest is `subscribe-duration` then
`block`: as a Python pollable, such a sleep is stopped at the deadline
instead of holding the guest's thread past it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .io import Pollable
from .state import WasiInstance

__all__ = ["BODIES", "RESOURCES", "now", "resolution", "subscribe_duration", "subscribe_instant"]

# Instants count from here, as wasmtime's count from the creation of the clock:
# a guest does not learn how long the host has been up.
_ORIGIN = time.monotonic_ns()
_RESOLUTION = max(1, round(time.clock_getres(time.CLOCK_MONOTONIC) * 1e9))


def now(_instance: WasiInstance) -> int:
    """`now`: nanoseconds on the monotonic clock."""
    return time.monotonic_ns() - _ORIGIN


def resolution(_instance: WasiInstance) -> int:
    """`resolution`: the clock's resolution in nanoseconds (the host's monotonic clock's)."""
    return _RESOLUTION


def subscribe_instant(instance: WasiInstance, when: int) -> Pollable:
    """`subscribe-instant`: a pollable ready once `now()` reaches `when` (at once if it has)."""
    return Pollable.timer(instance, _ORIGIN + when)


def subscribe_duration(instance: WasiInstance, duration: int) -> Pollable:
    """`subscribe-duration`: a pollable ready `duration` nanoseconds from now."""
    return Pollable.timer(instance, time.monotonic_ns() + duration)


_CLOCK = "wasi:clocks/monotonic-clock"

#: The body of every function of `wasi:clocks/monotonic-clock`.
BODIES: dict[tuple[str, str], Callable[..., Any]] = {
    (_CLOCK, "now"): now,
    (_CLOCK, "resolution"): resolution,
    (_CLOCK, "subscribe-instant"): subscribe_instant,
    (_CLOCK, "subscribe-duration"): subscribe_duration,
}

#: No resource of its own (its pollables are `wasi:io/poll`'s).
RESOURCES: dict[tuple[str, str], type] = {}
