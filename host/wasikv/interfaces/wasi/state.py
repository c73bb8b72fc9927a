"""What the Python WASI functions of one instance share: its deadline, its waker and its output."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ...capability import OutputStream
from ...runtime._capi import GuestFault
from ...runtime.deadlines import CHECK, Deadline

if TYPE_CHECKING:
    from .http.outbound import OutboundSender


@dataclass
class WasiInstance:
    """The per-instance state every Python WASI function body is given first.

    Anything a blocking call waits for (a request body arriving, a client
    taking response bytes, a clock) calls `wake()` when it changes; a
    blocked guest call waits in `wait`, which also stops it at its
    deadline, at an interruption or when the host shuts down.
    """

    deadline: Deadline | None = None
    stdout: OutputStream | None = None
    stderr: OutputStream | None = None
    #: Sends the guest's outbound HTTP requests (None: every one is denied).
    http_sender: OutboundSender | None = None
    _condition: threading.Condition = field(default_factory=threading.Condition, repr=False)

    def wake(self) -> None:
        """Tell waiting calls that something they may wait for has changed."""
        with self._condition:
            self._condition.notify_all()

    def wait(self, ready: Callable[[], bool], until: float | None = None) -> bool:
        """Block until `ready()` (True) or the monotonic time `until` has passed (False).

        Raises `GuestFault` (the guest traps) when the instance's deadline
        passes, it is interrupted or the host shuts down meanwhile, after
        marking the deadline so the trap is reported as a timeout or an
        interruption.
        """
        condition = self._condition
        deadline = self.deadline
        with condition:
            while True:
                if ready():
                    return True
                now = time.monotonic()
                if until is not None and now >= until:
                    return False
                timeout = CHECK
                if deadline is not None:
                    verdict = deadline._verdict(now)
                    if verdict is not None:
                        deadline.stopped = verdict
                        raise GuestFault(f"wasikv stopped the guest: {verdict}")
                    timeout = min(timeout, deadline.expires - now, deadline.shutdown.at - now)
                if until is not None:
                    timeout = min(timeout, until - now)
                condition.wait(max(timeout, 0.0005))


@dataclass(frozen=True)
class Unavailable:
    """A `BODIES` entry for a function no guest can reach meaningfully here.

    Such as a method of a filesystem descriptor, when wasikv gives guests
    none: it is linked so the component instantiates, and a call traps
    with `message`, without converting its arguments.
    """

    message: str


__all__ = ["Unavailable", "WasiInstance"]
