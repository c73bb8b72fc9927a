"""A component's instances kept warm across requests, one request at a time (`InstanceReuse`).

`ReusedInstances` is one component's set of kept instances. Each is used
serially (concurrent requests get different instances) and retired, that
is freed for good, after `max_requests` requests, after `idle_seconds`
without one, after any trap, timeout or interruption, after an error
response it gave (the trigger says which), and when its memory reaches
`max_memory_bytes`. wasmtime's C API does not tell the host how large an
instance's memory is, so that bound is wasmtime's own limiter: a reused
instance cannot grow past it, and the request whose allocation it refused
fails (a Python guest raises `MemoryError`) and retires the instance.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from wasmtime import Store
from wasmtime.component import Component, Instance

from ..capability import InstanceSpec, OutputStream
from ..errors import GuestInterrupted, GuestTimeout, GuestTrap
from ..host import Host
from ..instance_reuse import InstanceReuse
from ..live_instance import LiveInstance
from ._output import GuestOutput

log = logging.getLogger("wasikv")


class OutputRedirect:
    """An output stream that passes what it is given on to `target`, which can change between calls."""

    def __init__(self) -> None:
        self.target: OutputStream | None = None

    def write(self, data: bytes) -> int:
        """Pass `data` on to the current target (dropped if there is none)."""
        target = self.target
        if target is not None:
            target.write(data)
        return len(data)


class ReusedUse:
    """One request's use of a kept instance (what `ReusedInstances.use` yields)."""

    def __init__(self, live: LiveInstance) -> None:
        self.live = live
        #: Set by `retire`: the instance is freed after this use.
        self.retire_reason: str | None = None

    def retire(self, reason: str) -> None:
        """Free the instance after this use instead of keeping it (an error response, say)."""
        self.retire_reason = reason


class _Kept:
    """A kept instance, with the redirects its output goes through."""

    def __init__(self, live: LiveInstance, stdout: OutputRedirect, stderr: OutputRedirect) -> None:
        self.live = live
        self.stdout = stdout
        self.stderr = stderr
        self.output: GuestOutput | None = None
        self.idle_since = 0.0

    def point(self, output: GuestOutput) -> None:
        """Send the instance's output to `output` from now on."""
        if self.output is not None:
            self.output.log()  # anything the last request's guest wrote after it was logged
        self.stdout.target = output.stdout
        self.stderr.target = output.stderr
        self.output = output


class ReusedInstances:
    """One component's kept instances, handed out one request at a time (see the module's docstring).

    `name` names the component in logs and metrics. `close` frees every
    instance waiting and every one still in use once its request ends.
    """

    def __init__(
        self, host: Host, component: Component, spec: InstanceSpec, policy: InstanceReuse, *, name: str
    ) -> None:
        self.host = host
        self.component = component
        self.spec = spec
        self.policy = policy
        self.name = name
        memory = policy.max_memory_bytes
        self._memory_bytes = None if memory is None else min(memory, host.limits.max_memory_bytes)
        self._idle: list[_Kept] = []  # the most recently used last: it is warmest
        self._lock = threading.Lock()
        self._closed = False
        self._wake = threading.Event()
        self._sweeper: threading.Thread | None = None
        _open_sets.add(self)

    @contextmanager
    def use(self, output: GuestOutput) -> Iterator[ReusedUse]:
        """A kept instance (or a new one) for one request, its output sent to `output`.

        Calls made in the block raise `GuestTrap` as in `Host.instantiate`;
        the instance is kept for the next request unless the block failed
        or called `ReusedUse.retire`, or a bound of the policy was reached.
        """
        kept = self._take()
        kept.point(output)
        use = ReusedUse(kept.live)
        if kept.live.uses and self.host.metrics is not None:
            self.host.metrics.instance_reuses.labels(self.name).inc()
        try:
            with kept.live.calls():
                yield use
        except GuestTimeout:
            use.retire("timeout")
            raise
        except GuestInterrupted:
            use.retire("interrupted")
            raise
        except GuestTrap:
            exception = kept.live.errors.exception or ""
            use.retire("memory" if exception.startswith("MemoryError") else "trap")
            raise
        except BaseException:
            use.retire("error")
            raise
        finally:
            self._give_back(kept, use.retire_reason)

    def close(self) -> None:
        """Free every waiting instance now, and every one in use when its request ends."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        self._wake.set()
        for kept in idle:
            self._retire(kept, "closed")

    def _take(self) -> _Kept:
        expired: list[_Kept] = []
        kept = None
        now = time.monotonic()
        with self._lock:
            while self._idle:
                candidate = self._idle.pop()
                if now - candidate.idle_since >= self.policy.idle_seconds:
                    expired.append(candidate)
                else:
                    kept = candidate
                    break
        for old in expired:
            self._retire(old, "idle")
        if kept is not None:
            return kept
        stdout, stderr = OutputRedirect(), OutputRedirect()
        live = self.host.open_instance(
            self.component, self.spec.with_output(stdout, stderr), memory_bytes=self._memory_bytes
        )
        return _Kept(live, stdout, stderr)

    def _give_back(self, kept: _Kept, reason: str | None) -> None:
        live = kept.live
        if reason is None and not live.usable:
            reason = "timeout" if live.deadline.stopped == "timeout" else "interrupted"
        if reason is None and time.monotonic() > live.deadline.expires:
            # Answered, but late: the server may have answered 504 and given up on it already.
            reason = "timeout"
        if reason is None and live.uses >= self.policy.max_requests:
            reason = "requests"
        if reason is None:
            with self._lock:
                if not self._closed and len(self._idle) < self.policy.max_idle:
                    kept.idle_since = time.monotonic()
                    self._idle.append(kept)
                    self._start_sweeper()
                    return
                reason = "closed" if self._closed else "surplus"
        self._retire(kept, reason)

    def _retire(self, kept: _Kept, reason: str) -> None:
        kept.live.close()
        if kept.output is not None:
            kept.output.log()
        log.debug("retired an instance of %r after %d requests: %s", self.name, kept.live.uses, reason)
        if self.host.metrics is not None:
            self.host.metrics.instances_retired.labels(self.name, reason).inc()

    def _start_sweeper(self) -> None:
        # Called holding the lock.
        if self._sweeper is None:
            self._sweeper = threading.Thread(
                target=self._sweep, name=f"wasikv-reuse-{self.name}", daemon=True
            )
            self._sweeper.start()

    def _sweep(self) -> None:
        """Retire instances idle for `idle_seconds`, checking a few times per idle period.

        The thread ends when none is left waiting (the next one kept starts
        another), so a trigger dropped without `close` leaves no thread behind.
        """
        interval = max(0.05, self.policy.idle_seconds / 4)
        while not self._wake.wait(interval):
            now = time.monotonic()
            with self._lock:
                expired = [kept for kept in self._idle if now - kept.idle_since >= self.policy.idle_seconds]
                self._idle = [kept for kept in self._idle if kept not in expired]
                done = not self._idle
                if done:
                    self._sweeper = None
            for kept in expired:
                self._retire(kept, "idle")
            if done:
                return


class InstanceKeeper:
    """What a trigger keeps of its component: its name, its instance spec and, with `reuse`, kept instances.

    The spec gets argv `[name]`. Both HTTP triggers are built on it; `close` frees the instances kept.
    """

    def __init__(
        self,
        host: Host,
        component: Component,
        *,
        name: str,
        spec: InstanceSpec | None,
        reuse: InstanceReuse | None,
    ) -> None:
        self.host = host
        self.component = component
        self.name = name
        self.spec = replace(spec or InstanceSpec(), argv=(name,))
        #: How instances are reused (None: a fresh one per request).
        self.reuse = reuse
        self._reused = (
            None if reuse is None else ReusedInstances(host, component, self.spec, reuse, name=name)
        )

    def close(self) -> None:
        """Free the instances kept for reuse (each one in use once its request ends)."""
        if self._reused is not None:
            self._reused.close()


@contextmanager
def instance_for(
    host: Host, component: Component, spec: InstanceSpec, reused: ReusedInstances | None, output: GuestOutput
) -> Iterator[tuple[Store, Instance, ReusedUse | None]]:
    """A trigger's instance for one call, its output sent to `output`: fresh, or kept (with its use).

    Without `reused`, a fresh instance freed when the block ends; with it,
    one of its kept instances (see `ReusedInstances.use`).
    """
    if reused is None:
        with host.instantiate(component, spec.with_output(output.stdout, output.stderr)) as (store, instance):
            yield store, instance, None
    else:
        with reused.use(output) as use:
            yield use.live.store, use.live.instance, use


#: Every set not closed yet, closed at exit: a store freed at interpreter shutdown can abort the process.
_open_sets: weakref.WeakSet[ReusedInstances] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for instances in list(_open_sets):
        instances.close()


__all__ = ["InstanceKeeper", "OutputRedirect", "ReusedInstances", "ReusedUse", "instance_for"]
