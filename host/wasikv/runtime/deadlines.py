"""Deadlines and interruption of running guests, on wasmtime's epoch interruption.

Every engine wasikv creates compiles epoch checks into guest code (at
function entries and loop back-edges). One process-wide thread, the
`ticker`, advances the epoch of every live engine each `TICK` seconds. Each
instance's store gets an epoch deadline at most `CHECK` seconds ahead; when
it is reached, wasmtime calls `_on_deadline` on the guest's thread, which
either traps the guest (its own deadline passed, it was interrupted, or its
host is shutting down) or lets it run for another stretch. So a guest that
loops forever is stopped within `TICK` of its deadline and within `CHECK` of
an interruption, and a guest that never runs long never costs a callback.

What epochs cannot stop: a guest blocked inside a host call (a WASI clock
wait, `time.sleep`) is not running wasm, so it is stopped only when the
call returns. Callers that must answer on time (the HTTP trigger) also wait
with their own timeout.
"""

from __future__ import annotations

import ctypes
import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wasmtime import Engine, Store, _ffi

from wasikv_sdk.constants import HOSTCALL_BUDGET_BYTES

from ..errors import GuestInterrupted, GuestTimeout, GuestTrap, trap_cause
from . import _capi

#: Seconds per epoch tick: the precision of deadlines.
TICK = 0.01
#: The longest a running guest goes between two checks (for interruption).
CHECK = 0.25

#: Why a guest past its deadline was given up on rather than stopped.
BLOCKED = "it was blocked in a host call that cannot be interrupted (such as a sleep), and was given up on"

_CONTINUE = 0
# How wasmtime says a call moved more list elements than its hostcall budget.
_BUDGET_TRAP = "fuel allocated for hostcalls has been exhausted"

_DEADLINE_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_size_t,
    ctypes.c_void_p,
    ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_uint64),
    ctypes.POINTER(ctypes.c_uint8),
)
_set_callback = _ffi.dll.wasmtime_store_epoch_deadline_callback
_set_callback.restype = None
_set_callback.argtypes = [ctypes.c_void_p, _DEADLINE_CALLBACK, ctypes.c_void_p, ctypes.c_void_p]
_set_deadline = _ffi.dll.wasmtime_context_set_epoch_deadline
_set_deadline.restype = None
_set_deadline.argtypes = [ctypes.c_void_p, ctypes.c_uint64]


@dataclass
class Shutdown:
    """A host-wide cut-off: every guest of the host stops once `at` (monotonic) has passed."""

    at: float = math.inf

    def begin(self, grace: float = 0.0) -> None:
        """Stop every guest `grace` seconds from now (never later than an earlier call said)."""
        self.at = min(self.at, time.monotonic() + max(0.0, grace))

    @property
    def started(self) -> bool:
        """Whether `begin` was called."""
        return self.at != math.inf


@dataclass
class Deadline:
    """The deadline of one running instance, and why it was stopped.

    `timeout` is in seconds (None: no deadline); `restart` starts it again,
    for triggers that make several calls into one instance.
    """

    timeout: float | None
    shutdown: Shutdown
    expires: float = field(init=False, default=math.inf)
    cancelled: bool = field(init=False, default=False)
    #: "timeout" or "interrupted" once the guest was stopped for it.
    stopped: str | None = field(init=False, default=None)
    #: Set when the guest, blocked in a host call, was left running on its
    #: thread: its store must then stay alive.
    abandoned: bool = field(init=False, default=False)
    #: What a plain trap of this instance means (`Host.instantiate` sets the
    #: guest's uncaught exception, see `wasikv.runtime.guest_traps`).
    explain: Callable[[GuestTrap], GuestTrap] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.restart()

    def restart(self, timeout: float | None = None) -> None:
        """Start the deadline (again) now, optionally with another timeout."""
        if timeout is not None:
            self.timeout = timeout
        self.expires = math.inf if self.timeout is None else time.monotonic() + self.timeout

    def cancel(self) -> None:
        """Stop the guest at its next check (within `CHECK` seconds)."""
        self.cancelled = True

    def _verdict(self, now: float) -> str | None:
        if self.cancelled or now >= self.shutdown.at:
            return "interrupted"
        if now >= self.expires:
            return "timeout"
        return None

    def _ticks(self, now: float) -> int:
        remaining = min(CHECK, self.expires - now, self.shutdown.at - now)
        return max(1, math.ceil(remaining / TICK))

    def error(self, message: str) -> GuestTrap:
        """The exception for a trap of this instance: a timeout, an interruption, the guest's uncaught
        exception (with `explain`) or a plain trap."""
        if self.stopped == "timeout":
            message = f"component ran past its deadline of {self.timeout:g} s"
            if self.abandoned:
                message += f"; {BLOCKED}"
            return GuestTimeout(message, self.timeout, blocked=self.abandoned)
        if self.stopped == "interrupted":
            return GuestInterrupted("component interrupted (the host is stopping it)")
        if _BUDGET_TRAP in message:
            return GuestTrap(
                "component trapped: one call between it and the host carried more than wasmtime lets a"
                f" call copy (about {HOSTCALL_BUDGET_BYTES} bytes of list<u8>, e.g. a response body)"
            )
        cause = trap_cause(message)
        trap = GuestTrap(f"component trapped: {cause}", None if cause == message else message)
        return trap if self.explain is None else self.explain(trap)


# The deadline of each instance, by the address of its store's context.
_deadlines: dict[int, Deadline] = {}


def _on_deadline_py(ctx: int, _data: int, delta: Any, kind: Any) -> int:
    # Runs on the guest's thread whenever its epoch deadline is reached;
    # nothing may escape it into wasmtime.
    try:
        deadline = _deadlines.get(ctx or 0)
        now = time.monotonic()
        if deadline is not None:
            verdict = deadline._verdict(now)
            if verdict is not None:
                deadline.stopped = verdict
                return _capi.trap(f"wasikv stopped the guest: {verdict}")
            ticks = deadline._ticks(now)
        else:
            ticks = math.ceil(CHECK / TICK)
        delta[0] = ticks
        kind[0] = _CONTINUE
        return 0
    except BaseException as exc:
        return _capi.trap(f"wasikv deadline check failed: {exc!r}")


_on_deadline = _DEADLINE_CALLBACK(_on_deadline_py)


def arm(store: Store, ctx: int, deadline: Deadline) -> None:
    """Give the instance in `store` its deadline (before any guest code runs)."""
    _deadlines[ctx] = deadline
    _set_callback(ctypes.cast(store.ptr(), ctypes.c_void_p), _on_deadline, None, None)
    _set_deadline(ctx, deadline._ticks(time.monotonic()))


def disarm(ctx: int) -> None:
    """Forget the deadline of an instance that is gone."""
    _deadlines.pop(ctx, None)


def deadline_of(ctx: int) -> Deadline | None:
    """The deadline of the instance whose store context is at `ctx`."""
    return _deadlines.get(ctx)


class _Ticker:
    """One daemon thread advancing the epoch of every registered engine.

    It holds its engines strongly until `unregister`. With weak references
    an engine could be finalised (its native engine deleted, with the GIL
    released) while the weak set still handed it to this thread, which then
    incremented a freed engine: a segfault seen in a full test run.

    `unregister` runs in a `weakref.finalize` of the engine's host, that is
    wherever the garbage collector happens to run, which can be this
    thread inside its own critical section (an allocation there starts a
    collection). So it takes no lock: it queues the engine on a
    `queue.SimpleQueue`, which is safe to use from finalizers, and this
    thread drops queued engines at its next tick. Taking the lock there
    deadlocked the ticker and then every thread that made or dropped a host.
    """

    def __init__(self) -> None:
        self._engines: set[Engine] = set()
        self._gone: queue.SimpleQueue[Engine] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def register(self, engine: Engine) -> None:
        """Advance `engine`'s epoch every `TICK` until `unregister(engine)`."""
        with self._lock:
            self._drop_gone()  # an engine unregistered, then registered again, stays
            self._engines.add(engine)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="wasikv-epoch", daemon=True)
                self._thread.start()

    def unregister(self, engine: Engine) -> None:
        """Stop advancing `engine`'s epoch (its owner is gone); safe from finalizers, never blocks."""
        self._gone.put(engine)

    def _drop_gone(self) -> None:
        while True:
            try:
                self._engines.discard(self._gone.get_nowait())
            except queue.Empty:
                return

    def _run(self) -> None:
        increment: Callable[[Engine], None] = Engine.increment_epoch
        while True:
            time.sleep(TICK)
            with self._lock:
                self._drop_gone()
                engines = list(self._engines)
            for engine in engines:
                increment(engine)


ticker = _Ticker()


__all__ = ["CHECK", "TICK", "Deadline", "Shutdown", "arm", "deadline_of", "disarm", "ticker"]
