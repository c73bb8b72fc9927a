"""What `/livez` and `/readyz` answer for one `wasikv up` process.

- *Liveness* fails only when the process cannot serve: its event loop does
  not run a callback within `LOOP_WAIT` seconds. The answer comes from the
  loop itself (a callback it runs), not from the thread that serves the
  probe, which would answer even with the loop stuck.
- *Readiness* fails while the app is starting, from the moment a shutdown
  begins (SIGTERM: before the port stops accepting), and while a store the
  app uses does not answer. Each store is probed with one cheap read
  (`Store.check`) on a thread of its own, at most once per `PROBE_INTERVAL`
  seconds however often readiness is asked, and a probe that has not
  answered within `PROBE_TIMEOUT` counts as a failure: a readiness answer
  never waits longer, and never on the event loop.

Reasons name the store's label, never its URL (which may hold a password):
the probe's own error goes to the log, once per change of state.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..host import Host

log = logging.getLogger("wasikv")

#: Seconds a store's last probe is trusted: it is probed at most this often.
PROBE_INTERVAL = 1.0
#: Seconds a readiness answer waits for a store's probe; past it the store counts as unreachable.
PROBE_TIMEOUT = 0.5
#: Seconds liveness waits for the event loop to run a callback.
LOOP_WAIT = 0.5


@dataclass(frozen=True)
class Verdict:
    """One answer of a probe: `ok`, or the reasons it is not."""

    ok: bool
    reasons: tuple[str, ...] = ()

    @classmethod
    def of(cls, reasons: Sequence[str]) -> Verdict:
        """OK exactly when there is no reason against."""
        return cls(not reasons, tuple(reasons))

    def body(self, good: str, bad: str) -> bytes:
        """The JSON body: `{"status": good}`, or `{"status": bad, "reasons": [...]}`."""
        if self.ok:
            return json.dumps({"status": good}).encode() + b"\n"
        return json.dumps({"status": bad, "reasons": list(self.reasons)}).encode() + b"\n"


class HealthSource(Protocol):
    """What a health listener asks (one process's `Health`, or a supervisor's view of its children)."""

    def liveness(self) -> Verdict:
        """Whether the process (or every process) can serve."""
        ...

    def readiness(self) -> Verdict:
        """Whether the process (or every process) should be sent requests."""
        ...


class StoreProbe:
    """The last known reachability of one store, refreshed on demand at most once per `interval`."""

    def __init__(
        self,
        label: str,
        check: Callable[[], None],
        *,
        interval: float = PROBE_INTERVAL,
        timeout: float = PROBE_TIMEOUT,
    ) -> None:
        self.label = label
        self.interval = interval
        self.timeout = timeout
        self._check = check
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._done.set()  # no probe in progress
        self._checked_at = -math.inf
        self._reason: str | None = None

    def begin(self) -> None:
        """Start a probe unless one is in progress or the last one is recent enough."""
        with self._lock:
            if not self._done.is_set() or time.monotonic() - self._checked_at < self.interval:
                return
            done = self._done = threading.Event()
        threading.Thread(
            target=self._probe, args=(done,), name=f"wasikv-probe {self.label}", daemon=True
        ).start()

    def _probe(self, done: threading.Event) -> None:
        error: Exception | None = None
        try:
            self._check()
        except Exception as exc:  # whatever the client library raises, the store did not answer
            error = exc
        reason = None if error is None else f"store {self.label!r} is unreachable"
        with self._lock:
            changed = reason != self._reason
            self._reason = reason
            self._checked_at = time.monotonic()
            done.set()
        if changed and error is not None:
            log.warning("readiness: store %r is unreachable: %s", self.label, error)
        elif changed:
            log.warning("readiness: store %r answers again", self.label)

    def reason(self, deadline: float) -> str | None:
        """Why the store is not ready (None: it answered); waits for a probe in progress until `deadline`."""
        with self._lock:
            done = self._done
        if not done.wait(max(0.0, deadline - time.monotonic())):
            return f"store {self.label!r} did not answer within {self.timeout:g} s"
        with self._lock:
            return self._reason


def store_probes(host: Host) -> list[StoreProbe]:
    """A probe for each store `host` defines (one per store object, named by its first label)."""
    probes: list[StoreProbe] = []
    seen: set[int] = set()
    for label in host.labels:
        store = host.store(label)
        if id(store) not in seen:
            seen.add(id(store))
            probes.append(StoreProbe(label, store.check))
    return probes


class Health:
    """One server process's liveness and readiness (see the module's docstring)."""

    def __init__(self, probes: Sequence[StoreProbe] = ()) -> None:
        self.probes = list(probes)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._serving = False
        self._stopping = False

    def serving(self, loop: asyncio.AbstractEventLoop) -> None:
        """The app has started and `loop` accepts connections: ready, unless something else says not."""
        self._loop = loop
        self._serving = True

    def stopping(self) -> None:
        """A shutdown has begun: never ready again."""
        self._stopping = True

    def liveness(self) -> Verdict:
        """Live unless the event loop fails to run a callback within `LOOP_WAIT` (live before it runs)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return Verdict(True)
        answered = threading.Event()
        try:
            loop.call_soon_threadsafe(answered.set)
        except RuntimeError:  # closed meanwhile: the server has stopped, nothing is stuck
            return Verdict(True)
        if answered.wait(LOOP_WAIT):
            return Verdict(True)
        return Verdict(False, (f"the event loop did not answer within {LOOP_WAIT:g} s",))

    def readiness(self) -> Verdict:
        """Ready once serving, until a shutdown begins, while every store answers."""
        reasons: list[str] = []
        if self._stopping:
            reasons.append("shutting down")
        elif not self._serving:
            reasons.append("starting")
        deadline = time.monotonic() + PROBE_TIMEOUT
        for probe in self.probes:
            probe.begin()
        for probe in self.probes:
            if (reason := probe.reason(deadline)) is not None:
                reasons.append(reason)
        return Verdict.of(reasons)


__all__ = [
    "LOOP_WAIT",
    "PROBE_INTERVAL",
    "PROBE_TIMEOUT",
    "Health",
    "HealthSource",
    "StoreProbe",
    "Verdict",
    "store_probes",
]
