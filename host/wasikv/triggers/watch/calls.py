"""One delivery call as its runner watches it: its deadline, giving it up, and the writes it made.

A runner runs each `WatcherComponent.deliver` on a worker thread and waits
for it from its own, so that a watcher blocked in a host call (a WASI clock
wait, a request to a server that never answers: epochs cannot stop it) is
given up at its deadline instead of holding the trigger: `DeliveryCall`
carries what both threads share.

A delivery's own writes: what the watcher writes under its trigger's prefix
in the watched store would come back to it through the change feed (a
watcher that rewrites the key it is told about loops for ever). Writes of
the store's `set`, `increment`, ... report no seq, so `_RecordingStore`, the
store the delivery's instance sees under the watched label, brackets each
such write with `last_change()` reads and looks the write up in the feed
between them: a change there with the same key and value is this write
when the number of such changes equals the number of such items written
(every committed write appends exactly one change, and this one is in that
range). When another writer wrote the same key and value in that window,
nothing is recorded and the write is delivered back once: a change of
another writer is never skipped. `OwnWrites` holds the recorded seqs until
the runner passes them.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from ...errors import StoreError
from ...interfaces.keyvalue.session import KeyValueSession
from ...runtime.deadlines import Deadline
from ...stores.base import Change, Store, Versioned, format_counter

log = logging.getLogger("wasikv.watch")

_T = TypeVar("_T")
_Item = tuple[str, bytes | None]

#: Own writes remembered per trigger, waiting for the runner to pass them.
MAX_OWN_WRITES = 10_000
# A write whose bracket holds more changes than this (other writers were
# busy) is not looked up: it is delivered back once.
_MAX_BRACKET = 1000


class OwnWrites:
    """The seqs of changes a trigger's own deliveries wrote under its prefix, until the runner passes them.

    Bounded: past `limit` seqs waiting, further own writes are not recorded
    (they are delivered back like anyone's), with one warning.
    """

    def __init__(self, prefix: str, limit: int = MAX_OWN_WRITES) -> None:
        self.prefix = prefix
        self.limit = limit
        self._seqs: set[int] = set()
        self._lock = threading.Lock()
        self._warned = False

    def __len__(self) -> int:
        return len(self._seqs)

    def add(self, seqs: Iterable[int], who: str) -> None:
        """Record `seqs` as written by a delivery of this trigger."""
        with self._lock:
            for seq in seqs:
                if len(self._seqs) >= self.limit:
                    if not self._warned:
                        self._warned = True
                        log.warning(
                            "watcher %s: %d of its own writes wait to be passed; more are delivered back",
                            who,
                            self.limit,
                        )
                    return
                self._seqs.add(seq)

    def take(self, seq: int) -> bool:
        """Whether the change `seq` is an own write (forgetting it: each is skipped once)."""
        if not self._seqs:
            return False
        with self._lock:
            try:
                self._seqs.remove(seq)
            except KeyError:
                return False
            return True

    def forget_through(self, seq: int) -> None:
        """Forget own writes at or before `seq` (the runner is past them)."""
        if not self._seqs:
            return
        with self._lock:
            self._seqs = {s for s in self._seqs if s > seq}
            if len(self._seqs) < self.limit // 2:
                self._warned = False


class DeliveryCall:
    """One call of `WatcherComponent.deliver`, shared by the thread running it and the runner.

    The delivery publishes its instance's `deadline` and how many changes it
    `delivered`; the runner may ask it to `finish` early (stopping: no more
    changes after the current one), `cancel` it (the guest traps at its next
    check if it runs wasm) or `abandon` it (blocked in a host call: the
    runner gives up on it; it delivers nothing more and writes nothing more
    to the watched store). `own_writes`, when set, records the delivery's
    writes under the prefix (see the module's docstring).
    """

    def __init__(self, name: str, own_writes: OwnWrites | None = None) -> None:
        self.name = name
        self.own_writes = own_writes
        self.deadline: Deadline | None = None
        self.delivered = 0
        self.finishing = False
        self.abandoned = False

    def attach(self, session: KeyValueSession, deadline: Deadline, label: str) -> None:
        """Called by the delivery once its instance exists: watch `deadline`, record writes to `label`."""
        self.deadline = deadline
        resolve = session.resolve

        def resolving(requested: str) -> Store:
            store = resolve(requested)
            return _RecordingStore(store, self) if requested == label else store

        session.resolve = resolving

    @property
    def stopping(self) -> bool:
        """Whether the delivery must deliver no more changes."""
        return self.finishing or self.abandoned

    def finish(self) -> None:
        """Deliver no change after the current one."""
        self.finishing = True

    def cancel(self) -> None:
        """Stop the guest at its next check (it may be blocked in a host call, past checks)."""
        self.finishing = True
        if self.deadline is not None:
            self.deadline.cancel()

    def abandon(self) -> None:
        """Give the call up: it delivers and writes no more; its thread ends when the guest returns."""
        self.abandoned = True
        self.cancel()

    def expires(self, started: float, timeout: float | None) -> float | None:
        """When the current watcher call passes its deadline (None: never)."""
        deadline = self.deadline
        if deadline is not None:
            return None if deadline.timeout is None else deadline.expires
        return None if timeout is None else started + timeout

    def _record(self, store: Store, items: Sequence[_Item], before: int) -> None:
        own = self.own_writes
        if own is None:
            return
        wanted = Counter((key, value) for key, value in items if key.startswith(own.prefix))
        if not wanted:
            return
        try:
            after = store.last_change()
            if after - before > _MAX_BRACKET:
                return
            found: dict[_Item, list[int]] = {}
            for change in store.changes(before, after - before):
                item = (change.key, change.value)
                if change.seq <= after and item in wanted:
                    found.setdefault(item, []).append(change.seq)
        except StoreError:
            return  # not recorded: delivered back once
        own.add(
            (
                seq
                for item, count in wanted.items()
                if len(found.get(item, ())) == count
                for seq in found[item]
            ),
            self.name,
        )


class _RecordingStore(Store):
    """The watched store as a delivery's instance sees it: its writes under the prefix are recorded."""

    def __init__(self, inner: Store, call: DeliveryCall) -> None:
        self.inner = inner
        self.url = inner.url
        self._call = call

    def _write(
        self, keys: Iterable[str], write: Callable[[], _T], items: Callable[[_T], Sequence[_Item]]
    ) -> _T:
        call = self._call
        if call.abandoned:
            raise StoreError(
                f"watcher {call.name}: this delivery was given up (past its deadline); no writes"
            )
        own = call.own_writes
        if own is None or not any(key.startswith(own.prefix) for key in keys):
            return write()
        try:
            before = self.inner.last_change()
        except StoreError:
            return write()  # the write says what is wrong, if anything
        result = write()
        call._record(self.inner, items(result), before)
        return result

    def set(self, key: str, value: bytes) -> None:
        self._write((key,), lambda: self.inner.set(key, value), lambda _: [(key, value)])

    def delete(self, key: str) -> None:
        self._write((key,), lambda: self.inner.delete(key), lambda _: [(key, None)])

    def increment(self, key: str, delta: int) -> int:
        return self._write(
            (key,), lambda: self.inner.increment(key, delta), lambda new: [(key, format_counter(new))]
        )

    def swap(self, key: str, version: int, value: bytes) -> bool:
        return self._write(
            (key,), lambda: self.inner.swap(key, version, value), lambda done: [(key, value)] if done else []
        )

    def set_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        self._write((key for key, _ in items), lambda: self.inner.set_many(items), lambda _: list(items))

    def delete_many(self, keys: Sequence[str]) -> None:
        self._write(keys, lambda: self.inner.delete_many(keys), lambda _: [(key, None) for key in keys])

    def get(self, key: str) -> bytes | None:
        return self.inner.get(key)

    def get_versioned(self, key: str) -> Versioned:
        return self.inner.get_versioned(key)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def list_keys(self, after: str | None, limit: int) -> list[str]:
        return self.inner.list_keys(after, limit)

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return self.inner.get_many(keys)

    def changes(self, after: int, limit: int) -> list[Change]:
        return self.inner.changes(after, limit)

    def last_change(self) -> int:
        return self.inner.last_change()

    def close(self) -> None:
        """Nothing: the store belongs to the host, not to the instance."""


__all__ = ["MAX_OWN_WRITES", "DeliveryCall", "OwnWrites"]
