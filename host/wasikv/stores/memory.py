"""An in-process store: a dict behind one lock, lost when the process exits."""

from __future__ import annotations

import threading
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import ClassVar
from urllib.parse import quote

from ..errors import StoreError
from . import _shared
from .base import (
    Change,
    LeaseState,
    Store,
    Versioned,
    add_delta,
    check_item,
    check_key,
    check_position,
    check_position_name,
    format_counter,
    loaded_position,
    parse_counter,
    unsigned_refusal,
)


class MemoryStore(Store):
    """A thread-safe in-memory store with the same semantics as the SQLite store.

    Every write gives the key the next value of a store-wide sequence as its
    version; deletes leave tombstones so that `swap` notices them. Tombstones
    older than `tombstone_window` writes are dropped, and the newest dropped
    version becomes the "watermark": the version of every key without a row.

    The change feed keeps the newest `change_window` changes, and fewer when
    their values would add up to more than `change_bytes` bytes (it shares
    the value objects with the live data, so only values that were since
    overwritten or deleted cost extra memory); `wait_for_change` wakes up as
    soon as a write commits. Change-feed reader positions are kept in a dict
    and end with the object, as the feed does (`keeps_positions` is False).
    """

    atomic_batches: ClassVar[bool] = True
    has_change_feed: ClassVar[bool] = True
    change_notifications: ClassVar[bool] = True
    has_leases: ClassVar[bool] = True

    def __init__(
        self,
        url: str = "memory:",
        *,
        tombstone_window: int = _shared.DEFAULT_TOMBSTONE_WINDOW,
        change_window: int = _shared.DEFAULT_CHANGE_WINDOW,
        change_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        _shared.check_windows(tombstone_window, change_window)
        if change_bytes < 0:
            raise ValueError("change_bytes must not be negative")
        self.url = url
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._waiters = 0
        # (seq, key, value) with consecutive seqs, oldest first; `_feed_bytes`
        # sums the sizes of their values.
        self._feed: deque[tuple[int, str, bytes | None]] = deque()
        self._feed_bytes = 0
        self._change_window = change_window
        self._change_bytes = change_bytes
        self._live: dict[str, tuple[bytes, int]] = {}
        # Insertion order is version order: a key is removed before it is re-added.
        self._tombstones: dict[str, int] = {}
        self._seq = 0
        self._watermark = 0
        self._window = tombstone_window
        self._prune_every = _shared.prune_every(tombstone_window)
        self._deletes = 0
        # The sorted key list is repaired lazily so that writes stay O(1):
        # `_added` holds live keys missing from `_sorted`, `_removed` holds
        # keys in `_sorted` that are no longer live.
        self._sorted: list[str] = []
        self._added: set[str] = set()
        self._removed: set[str] = set()
        self._positions: dict[str, int] = {}
        # Lease name -> its record; group -> member -> when it expires (monotonic).
        self._leases: dict[str, _Lease] = {}
        self._members: dict[str, dict[str, float]] = {}

    # -- reads -----------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        """The value of `key`, or None when it does not exist."""
        with self._lock:
            row = self._live.get(key)
        return None if row is None else row[0]

    def get_versioned(self, key: str) -> Versioned:
        """The value of `key` and its version (the watermark for unknown keys)."""
        with self._lock:
            row = self._live.get(key)
            if row is not None:
                return Versioned(row[0], row[1])
            return Versioned(None, self._tombstones.get(key, self._watermark))

    def exists(self, key: str) -> bool:
        """Whether `key` exists (an empty value exists)."""
        with self._lock:
            return key in self._live

    def list_keys(self, after: str | None, limit: int) -> list[str]:
        """Up to `limit` keys greater than `after`, in code-point order."""
        if limit <= 0:
            return []
        with self._lock:
            keys = self._sorted_keys()
            start = 0 if after is None else bisect_right(keys, after)
            return keys[start : start + limit]

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values of `keys`, in request order, None for missing keys."""
        with self._lock:
            rows = [self._live.get(key) for key in keys]
        return [None if row is None else row[0] for row in rows]

    # -- writes ----------------------------------------------------------

    def set(self, key: str, value: bytes) -> None:
        """Create or replace `key`."""
        check_item("memory", key, value)
        with self._lock:
            self._put(key, value)
            if self._waiters:
                self._changed.notify_all()

    def delete(self, key: str) -> None:
        """Remove `key`, leaving a tombstone; a missing key is not an error."""
        check_key("memory", key)
        with self._lock:
            self._remove(key)
            self._after_deletes(1)
            if self._waiters:
                self._changed.notify_all()

    def increment(self, key: str, delta: int) -> int:
        """Add `delta` to the decimal counter at `key` and return the result."""
        check_key("memory", key)
        with self._lock:
            row = self._live.get(key)
            new = add_delta(key, parse_counter(key, None if row is None else row[0]), delta)
            self._put(key, format_counter(new))
            if self._waiters:
                self._changed.notify_all()
        return new

    def increment_unsigned(self, key: str, delta: int) -> int:
        """`increment` that refuses a result below zero before writing it (0.2.0-draft's u64 increment)."""
        check_key("memory", key)
        with self._lock:
            row = self._live.get(key)
            new = add_delta(key, parse_counter(key, None if row is None else row[0]), delta)
            if new < 0:
                raise StoreError(unsigned_refusal(key, new))
            self._put(key, format_counter(new))
            if self._waiters:
                self._changed.notify_all()
        return new

    def swap(self, key: str, version: int, value: bytes) -> bool:
        """Set `key` to `value` only if its version is still `version`."""
        check_item("memory", key, value)
        with self._lock:
            row = self._live.get(key)
            current = row[1] if row is not None else self._tombstones.get(key, self._watermark)
            if current != version:
                return False
            self._put(key, value)
            if self._waiters:
                self._changed.notify_all()
            return True

    def set_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Set every pair at once; a later duplicate key wins."""
        # Validate everything first: nothing below can fail, so the batch is atomic.
        for key, value in items:
            check_item("memory", key, value)
        with self._lock:
            for key, value in items:
                self._put(key, value)
            if self._waiters:
                self._changed.notify_all()

    def delete_many(self, keys: Sequence[str]) -> None:
        """Delete every key at once."""
        for key in keys:
            check_key("memory", key)
        with self._lock:
            for key in keys:
                self._remove(key)
            self._after_deletes(len(keys))
            if self._waiters:
                self._changed.notify_all()

    # -- change feed -----------------------------------------------------

    def changes(self, after: int, limit: int) -> list[Change]:
        """Up to `limit` retained changes with `seq > after`, oldest first."""
        with self._lock:
            feed = self._feed
            if limit <= 0 or not feed:
                return []
            size = len(feed)
            start = max(0, after + 1 - feed[0][0])
            stop = min(size, start + limit)
            if start >= stop:
                return []
            if start > size - stop:
                # Near the newest end (a watcher keeping up): walk from the right.
                rows = list(islice(reversed(feed), size - stop, size - start))[::-1]
            else:
                rows = list(islice(feed, start, stop))
        return [Change._make(row) for row in rows]

    def last_change(self) -> int:
        """The seq of the newest write (0 before the first)."""
        with self._lock:
            return self._seq

    def wait_for_change(self, after: int, timeout: float) -> bool:
        """Block until a write with `seq > after` commits, or `timeout` seconds pass."""
        with self._lock:
            self._waiters += 1
            try:
                return self._changed.wait_for(lambda: self._seq > after, timeout)
            finally:
                self._waiters -= 1

    # -- change-feed positions -------------------------------------------

    def load_position(self, name: str) -> int | None:
        """The position `name` saved in this process; None if it never saved one."""
        check_position_name("memory", name)
        with self._lock:
            saved = self._positions.get(name)
        if saved is None:
            return None
        return loaded_position(
            f"memory store {self.url}", name, saved, "restart the process (memory positions end with it)"
        )

    def save_position(self, name: str, seq: int) -> None:
        """Remember `seq` as the position of `name` (for as long as this object lives)."""
        check_position("memory", name, seq)
        with self._lock:
            self._positions[name] = seq

    # -- leases (threads of this process take turns; see `Store.acquire_lease`) --

    def acquire_lease(self, name: str, holder: str, seconds: float) -> LeaseState:
        """Take the lease `name` for `seconds` unless another holder's has not expired."""
        ms = _shared.check_lease("memory", name, seconds)
        _shared.check_holder("memory", holder)
        now = time.monotonic()
        with self._lock:
            lease = self._leases.setdefault(name, _Lease())
            if lease.expires > now:
                return LeaseState(False, lease.token, lease.holder, lease.claimed)
            previous = lease.holder
            lease.token += 1
            lease.holder = holder
            lease.expires = now + ms / 1000
            return LeaseState(True, lease.token, previous, lease.claimed)

    def renew_lease(self, name: str, holder: str, token: int, seconds: float) -> bool:
        """Extend the lease if `token` is still its newest."""
        ms = _shared.check_lease("memory", name, seconds)
        _shared.check_token("memory", token)
        with self._lock:
            lease = self._leases.get(name)
            if lease is None or lease.token != token:
                return False
            lease.expires = time.monotonic() + ms / 1000
        return True

    def release_lease(self, name: str, token: int) -> None:
        """Expire the lease now if `token` is still its newest."""
        check_position_name("memory", name)
        _shared.check_token("memory", token)
        with self._lock:
            lease = self._leases.get(name)
            if lease is not None and lease.token == token:
                lease.expires = 0.0
                lease.holder = ""

    def save_fenced(self, name: str, token: int, seq: int, claimed: int) -> bool:
        """Save the position and claim only if `token` is the lease's newest."""
        check_position("memory", name, seq)
        check_position("memory", name, claimed)
        _shared.check_token("memory", token)
        with self._lock:
            lease = self._leases.get(name)
            if lease is None or lease.token != token:
                return False
            lease.claimed = claimed
            self._positions[name] = seq
        return True

    def lease_members(self, group: str, member: str, seconds: float) -> int:
        """Record `member` alive for `seconds`; the members alive now."""
        ms = _shared.check_lease("memory", group, seconds)
        _shared.check_holder("memory", member)
        now = time.monotonic()
        with self._lock:
            members = self._members.setdefault(group, {})
            members[member] = now + ms / 1000
            for gone in [m for m, expires in members.items() if expires <= now]:
                del members[gone]
            return len(members)

    def close(self) -> None:
        """Nothing to release: the data lives as long as this object."""

    # -- internals (caller holds the lock) -------------------------------

    def _put(self, key: str, value: bytes) -> None:
        self._seq += 1
        if key not in self._live:
            self._tombstones.pop(key, None)
            if key in self._removed:
                self._removed.discard(key)
            else:
                self._added.add(key)
        self._live[key] = (value, self._seq)
        feed = self._feed
        feed.append((self._seq, key, value))
        self._feed_bytes += len(value)
        if len(feed) > self._change_window or self._feed_bytes > self._change_bytes:
            self._trim_feed()

    def _remove(self, key: str) -> None:
        self._seq += 1
        if self._live.pop(key, None) is not None:
            if key in self._added:
                self._added.discard(key)
            else:
                self._removed.add(key)
        self._tombstones.pop(key, None)
        self._tombstones[key] = self._seq
        feed = self._feed
        feed.append((self._seq, key, None))
        if len(feed) > self._change_window:
            self._trim_feed()

    def _trim_feed(self) -> None:
        feed = self._feed
        # The newest change always stays, however large its value.
        while len(feed) > self._change_window or (self._feed_bytes > self._change_bytes and len(feed) > 1):
            dropped = feed.popleft()[2]
            if dropped is not None:
                self._feed_bytes -= len(dropped)

    def _after_deletes(self, count: int) -> None:
        self._deletes += count
        if self._deletes >= self._prune_every:
            self._deletes = 0
            self._prune()

    def _prune(self) -> None:
        cutoff = self._seq - self._window
        doomed: list[str] = []
        newest = self._watermark
        for key, version in self._tombstones.items():
            if version >= cutoff:
                break
            doomed.append(key)
            newest = version
        for key in doomed:
            del self._tombstones[key]
        # Keys without a row now report the newest pruned version, so a handle
        # pinned to any pruned tombstone (or to an older watermark) conflicts.
        self._watermark = max(self._watermark, newest)

    def _sorted_keys(self) -> list[str]:
        if self._removed:
            removed = self._removed
            self._sorted = [key for key in self._sorted if key not in removed]
            self._removed = set()
        if self._added:
            # Two sorted runs: timsort merges them in linear time.
            self._sorted.extend(sorted(self._added))
            self._sorted.sort()
            self._added = set()
        return self._sorted


@dataclass
class _Lease:
    token: int = 0
    holder: str = ""
    expires: float = 0.0
    claimed: int = 0


def open_url(url: str, *, label: str | None = None) -> MemoryStore:
    """A fresh store for `memory:` or `memory:NAME` (the registry's opener; hosts share stores by URL)."""
    return MemoryStore(url)


def config_url(label: str, table: Mapping[str, object], base: Path, state_dir: Path) -> str:
    """`type = "memory"`: a name of its own per label, since hosts share stores by URL."""
    return f"memory:{quote(label, safe='')}"
