"""Taking turns on a watch trigger across processes and machines: leases with fencing tokens.

Every process that runs an application's watch triggers (each `wasikv up`,
each child of `--processes`) keeps one `Lease` per trigger, in the watched
store (`Store.acquire_lease`). Only the holder of a trigger's lease delivers
its changes, and only the holder of the newest token can save the trigger's
position (`Store.save_fenced`). A `LeaseCoordinator` thread per process
takes free leases, renews held ones every third of the lease time, and
hands one over when the process holds more than its share. The design and
its guarantees: docs/guides/several-machines.md.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import socket
import threading
import time
from collections.abc import Sequence

from ...app.triggers.key_value import MAX_LEASE, MIN_LEASE
from ...errors import ConfigError, StoreError
from ...stores.base import LeaseState
from ...stores.base import Store as KeyValueStore

__all__ = [
    "DEFAULT_LEASE",
    "MAX_LEASE",
    "MIN_LEASE",
    "Lease",
    "LeaseCoordinator",
    "check_lease_time",
    "holder_name",
]

log = logging.getLogger("wasikv.watch")

#: Seconds a trigger's lease lasts unless renewed (`lease_seconds`, `--watch-lease`).
DEFAULT_LEASE = 10.0
# A holder renews after this part of the lease time, and stops delivering
# once this part has passed since its last successful renewal began (by its
# own monotonic clock): the rest is the margin in which the call in progress
# ends (stopping one takes at most about a second) before another process
# can take the lease.
_RENEW_AFTER = 1 / 3
_VALID_FOR = 3 / 4
# Free leases are tried this often (the fraction of the lease time, at most
# the seconds) by a process holding less than its share, and once a second
# by one holding its share or more.
_EAGER_FRACTION = 1 / 8
_EAGER_MOST = 0.25
_SLOW_POLL = 1.0
# A lease handed over is not taken back by its process for this many lease times.
_COOLDOWN = 2.0
# A lease is handed over only once held for this many lease times.
_SETTLED = 2.0
# Store errors of the coordinator are logged at most this often.
_LOG_INTERVAL = 60.0


def check_lease_time(value: object, where: str) -> float:
    """`value` as a lease time in seconds; `ConfigError` naming `where` unless a number from 1 to 3600."""
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or not MIN_LEASE <= value <= MAX_LEASE
    ):
        raise ConfigError(
            f"{where}: the lease time must be a number of seconds from {MIN_LEASE:g} to {MAX_LEASE:g}, "
            f"not {value!r}"
        )
    return float(value)


def holder_name() -> str:
    """A name for this process as a lease holder: host name, process id and a random part."""
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(3)}"


class Lease:
    """One trigger's lease as this process sees it: held (with a token) or not.

    The coordinator thread acquires and renews it; the trigger's runner
    delivers only while `valid()` and saves its position with `token`.
    """

    def __init__(self, store: KeyValueStore, name: str, seconds: float, holder: str) -> None:
        self.store = store
        self.name = name
        self.seconds = seconds
        self.holder = holder
        self._changed = threading.Condition()
        #: The token held now (None: not held), and what acquiring it found.
        self.token: int | None = None
        self.grant: LeaseState | None = None
        self.acquired_at = 0.0
        self._valid_until = 0.0
        self.renew_at = 0.0
        self.next_try = 0.0
        self.cooldown_until = 0.0
        #: Set by the coordinator: the runner should save and release the lease.
        self.yielding = False
        self._failed_at: float | None = None

    def valid(self) -> bool:
        """Whether the runner may deliver now: held, surely unexpired, and not being handed over."""
        with self._changed:
            return self.token is not None and not self.yielding and time.monotonic() < self._valid_until

    def wait(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for the lease to change (acquired, renewed, lost)."""
        with self._changed:
            self._changed.wait(timeout)

    def acquire(self) -> bool:
        """Try to take the lease now; True if this process holds it afterwards."""
        started = time.monotonic()
        try:
            state = self.store.acquire_lease(self.name, self.holder, self.seconds)
        except StoreError as exc:
            self._store_failed("take", exc)
            return False
        self._failed_at = None
        if not state.acquired:
            return False
        with self._changed:
            self.token = state.token
            self.grant = state
            self.acquired_at = started
            self._extend(started)
        return True

    def renew(self) -> None:
        """Extend the lease; a refusal (another process holds a newer token) loses it."""
        token = self.token
        if token is None:
            return
        started = time.monotonic()
        try:
            renewed = self.store.renew_lease(self.name, self.holder, token, self.seconds)
        except StoreError as exc:
            # Not lost yet: the runner stops on its own once `valid()` turns
            # False, and resumes if a later renewal gets through in time.
            self._store_failed("renew", exc)
            self.renew_at = time.monotonic() + min(1.0, self.seconds * _RENEW_AFTER)
            return
        self._failed_at = None
        with self._changed:
            if self.token != token:
                return
            if renewed:
                self._extend(started)
            else:
                self._drop()
                log.warning("watch lease %s: another process took it over; stopped delivering", self.name)

    def hand_over(self) -> None:
        """Ask the runner to save and release the lease (it stops delivering at once)."""
        with self._changed:
            if self.token is not None:
                self.yielding = True
                self._changed.notify_all()

    def lose(self) -> None:
        """Forget the lease after the store refused a save with its token (another process holds it)."""
        with self._changed:
            self._drop()

    def release(self, *, cooldown: bool = False) -> None:
        """Let the lease go in the store (after the runner saved), so that another process may take it."""
        with self._changed:
            token = self.token
            self._drop()
            if cooldown:
                self.cooldown_until = time.monotonic() + _COOLDOWN * self.seconds
        if token is None:
            return
        try:
            self.store.release_lease(self.name, token)
        except StoreError as exc:
            # It expires by itself within the lease time.
            log.warning("watch lease %s: cannot release it (it expires by itself): %s", self.name, exc)

    def _extend(self, started: float) -> None:
        self._valid_until = started + self.seconds * _VALID_FOR
        self.renew_at = started + self.seconds * _RENEW_AFTER
        self._changed.notify_all()

    def _drop(self) -> None:
        self.token = None
        self.yielding = False
        self._valid_until = 0.0
        self._changed.notify_all()

    def _store_failed(self, what: str, exc: StoreError) -> None:
        now = time.monotonic()
        if self._failed_at is None or now - self._failed_at >= _LOG_INTERVAL:
            self._failed_at = now
            log.error("watch lease %s: cannot %s it: %s", self.name, what, exc)


class LeaseCoordinator:
    """The thread that takes, renews and spreads one process's leases.

    Per store, the processes sharing it heartbeat into a group
    (`Store.lease_members`); a process's fair share is its store's triggers
    divided by the processes alive, rounded up. Below its share a process
    tries free leases every `_EAGER_MOST` seconds (at most), at or above it
    once a second, so that free leases go to the processes with the least
    work; above its share it hands over the newest lease it has held for two
    lease times (at most one per lease time), and does not take that one
    back for two lease times.
    """

    def __init__(self, leases: Sequence[Lease], group: str) -> None:
        self.leases = list(leases)
        self.group = group
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        stores: dict[int, list[Lease]] = {}
        for lease in self.leases:
            stores.setdefault(id(lease.store), []).append(lease)
        self._stores = list(stores.values())
        self._members = [1] * len(self._stores)
        self._heartbeat_at = [0.0] * len(self._stores)
        self._last_yield = [-math.inf] * len(self._stores)
        shortest = min((lease.seconds for lease in self.leases), default=DEFAULT_LEASE)
        self._tick = min(0.1, shortest / 10)

    def start(self) -> None:
        """Start the thread (after the runners' first synchronous `Lease.acquire`)."""
        if not self.leases or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="wasikv-watch-leases", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (the runners release their leases as they stop)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)

    def _run(self) -> None:
        try:
            while not self._stop.wait(self._tick):
                for index in range(len(self._stores)):
                    self.tick(index)
        except BaseException:
            log.exception("the watch lease coordinator stopped by an unexpected error")
            raise

    def tick(self, index: int) -> None:
        """Heartbeat, renew, take and hand over the leases on one store, as due now."""
        leases = self._stores[index]
        now = time.monotonic()
        if now >= self._heartbeat_at[index]:
            self._heartbeat(index, leases, now)
        fair = math.ceil(len(leases) / max(1, self._members[index]))
        held = [lease for lease in leases if lease.token is not None]
        for lease in leases:
            if self._stop.is_set():
                return
            if lease.token is not None:
                if time.monotonic() >= lease.renew_at:
                    lease.renew()
                continue
            now = time.monotonic()
            if now < lease.next_try or now < lease.cooldown_until:
                continue
            eager = len(held) < fair
            pause = min(_EAGER_MOST, lease.seconds * _EAGER_FRACTION) if eager else _SLOW_POLL
            lease.next_try = now + pause
            if lease.acquire():
                held.append(lease)
        # Only leases held for a while are handed over: just after a
        # takeover the dead process may still count as a member.
        settled = [lease for lease in held if now - lease.acquired_at >= _SETTLED * lease.seconds]
        if len(held) > fair and settled and now >= self._last_yield[index] + settled[0].seconds:
            newest = max(settled, key=lambda lease: lease.acquired_at)
            if not newest.yielding:
                self._last_yield[index] = now
                log.info(
                    "watch lease %s: handing it over (this process holds %d of %d leases, %d processes "
                    "share them)",
                    newest.name,
                    len(held),
                    len(leases),
                    self._members[index],
                )
                newest.hand_over()

    def _heartbeat(self, index: int, leases: Sequence[Lease], now: float) -> None:
        seconds = max(lease.seconds for lease in leases)
        self._heartbeat_at[index] = now + min(lease.seconds for lease in leases) * _RENEW_AFTER
        try:
            self._members[index] = leases[0].store.lease_members(self.group, leases[0].holder, seconds)
        except StoreError:
            pass  # the leases' own calls log the store's trouble
