"""A shared state dictionary with per-key locks and all-or-nothing updates.

Pure Python over `BucketProtocol`; guests and host-side services sharing a
store share the dictionary::

    from wasikv_sdk.state import StateDictionary

    state = StateDictionary(bucket, "scene")
    state.update_locks("alice", acquire={"camera": 10.0})      # ttl in seconds, None = until released
    state.update_state("alice", updates={"camera": [0, 1, 2]}, removals=["old"])
    state.copy_content()                                        # {"camera": [0, 1, 2], ...}

    sub = state.subscribe()
    change = sub.wait(timeout=5.0)       # merged updates/removals since the last read
    change.updates, change.removals

Design: the whole dictionary -- values, locks and a version number -- is ONE
key, ``"state/" + name``, holding a JSON document, and every write is a
compare-and-swap of that key (retried with backoff on conflicts). So:

- `update_state` is all-or-nothing by construction: a reader gets either
  the document before or the document after, never a mix; checking the
  locks and applying the change happen against the same version, so a lock
  taken by another token in between makes the swap fail and the check run
  again.
- `update_locks` either takes every requested lock or none (releases are
  applied either way) -- two tokens racing for overlapping keys cannot both
  win, because only one of their swaps can succeed against a given version.

Limits: the whole document must fit in one value (the host's
`max_value_bytes`, 2 MiB by default); a write that would exceed it fails
with `StoreError` and changes nothing. Every write rewrites and every read
parses the whole document, and all writers contend on one key, so this
suits state of kilobytes to a few hundred kilobytes with moderate write
rates, not a database. A write that loses races for `cas_timeout` seconds
raises `CasConflict`.

Change buffer: a `Subscription` polls the document (the same code runs in
guests, which cannot reach the stores' change feed) and reports the
difference between what it last delivered and what is stored now: merged
updates (latest value per key) and removals since its last read.
Intermediate values between two polls are not seen, a key set again to the
value it had is not a change, and a key added and removed between two polls
is not reported.

Lock ttl and clocks: a lock with a ttl expires at the writer's wall clock
time + ttl, and is treated as free once the wall clock of whoever looks
passes it, so hosts with skewed clocks see locks expire early or late by the
skew. A crashed lock holder's locks free themselves after their ttl (locks
taken with ttl None stay until released). Store failures propagate
(`StoreError` etc.); a write whose reply was lost may or may not have
applied, but never partially.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._cas import cas_loop
from ._clock import Backoff, Deadline, now
from .coordination import CorruptRecord, ResourceLockedError
from .protocol import BucketProtocol

__all__ = ["KEY_PREFIX", "Change", "ResourceLockedError", "StateDictionary", "Subscription"]

#: Every state dictionary's key is KEY_PREFIX + its name.
KEY_PREFIX = "state/"


@dataclass
class Change:
    """What changed between two reads: new or changed values, and removed keys."""

    updates: dict[str, Any] = field(default_factory=dict)
    removals: set[str] = field(default_factory=set)
    #: The document version this change brings the subscriber to.
    version: int = 0

    def __bool__(self) -> bool:
        return bool(self.updates or self.removals)


@dataclass
class _Lock:
    token: str
    expires: float | None

    def live(self, at: float) -> bool:
        return self.expires is None or self.expires > at


@dataclass
class _Document:
    version: int = 0
    values: dict[str, Any] = field(default_factory=dict)
    locks: dict[str, _Lock] = field(default_factory=dict)

    @classmethod
    def decode(cls, key: str, raw: bytes | None) -> _Document:
        if raw is None:
            return cls()
        try:
            data: Any = json.loads(raw)
            locks = {k: _Lock(str(v["token"]), v["expires"]) for k, v in data["locks"].items()}
            document = cls(int(data["version"]), dict(data["values"]), locks)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise CorruptRecord(f"key {key!r} does not hold a state document: {raw[:64]!r}") from exc
        return document

    def encode(self) -> bytes:
        locks = {k: {"token": v.token, "expires": v.expires} for k, v in self.locks.items()}
        return json.dumps(
            {"version": self.version, "values": self.values, "locks": locks},
            separators=(",", ":"),
            allow_nan=False,
        ).encode()

    def prune(self, at: float) -> bool:
        """Drop expired locks; report whether any was dropped."""
        stale = [k for k, lock in self.locks.items() if not lock.live(at)]
        for k in stale:
            del self.locks[k]
        return bool(stale)

    def blocked(self, token: str, keys: Iterable[str]) -> list[str]:
        return sorted({k for k in keys if k in self.locks and self.locks[k].token != token})


class StateDictionary:
    """The JSON dictionary `name` in `bucket`, with per-key locks held by tokens.

    A token is any string naming an owner (a user, a session, a process).
    Keys that nobody locked may be updated by any token.
    """

    def __init__(self, bucket: BucketProtocol, name: str, *, cas_timeout: float = 10.0) -> None:
        self.bucket = bucket
        self.name = name
        self.key = KEY_PREFIX + name
        self.cas_timeout = cas_timeout

    def __repr__(self) -> str:
        return f"<StateDictionary {self.name!r}>"

    def _document(self) -> _Document:
        return _Document.decode(self.key, self.bucket.get(self.key))

    # -- reading ----------------------------------------------------------

    def copy_content(self) -> dict[str, Any]:
        """A copy of every value, from one consistent version."""
        return self._document().values

    def copy_locks(self) -> dict[str, str]:
        """key -> token of every unexpired lock."""
        at = now()
        return {k: lock.token for k, lock in self._document().locks.items() if lock.live(at)}

    def version(self) -> int:
        """How many `update_state` calls changed the dictionary so far."""
        return self._document().version

    # -- writing ----------------------------------------------------------

    def update_locks(
        self,
        token: str,
        acquire: Mapping[str, float | None] | None = None,
        release: Iterable[str] = (),
    ) -> None:
        """Take the locks in `acquire` (key -> ttl seconds, None = until released) for `token`, all or none.

        `release` lists keys whose locks `token` gives up; locks held by other
        tokens are left alone. Releases happen first and always, even when
        the acquisition fails. Taking a lock `token` already holds renews it.

        Raises:
            ResourceLockedError: another token holds some of the requested
                keys (named in `.keys`); none of `acquire` was taken.
            CasConflict: the dictionary kept changing for `cas_timeout` seconds.
        """
        wanted = dict(acquire or {})
        for key, ttl in wanted.items():
            if ttl is not None and ttl <= 0:
                raise ValueError(f"lock ttl for {key!r} must be positive or None, not {ttl}")
        giving_up = set(release)

        def step(raw: bytes | None) -> tuple[bytes | None, list[str]]:
            document = _Document.decode(self.key, raw)
            at = now()
            changed = document.prune(at)
            for key in giving_up:
                lock = document.locks.get(key)
                if lock is not None and lock.token == token:
                    del document.locks[key]
                    changed = True
            conflicts = document.blocked(token, wanted)
            if not conflicts:
                for key, ttl in wanted.items():
                    document.locks[key] = _Lock(token, None if ttl is None else at + ttl)
                    changed = True
            return (document.encode() if changed else None), conflicts

        conflicts = cas_loop(self.bucket, self.key, step, timeout=self.cas_timeout)
        if conflicts:
            raise ResourceLockedError(
                conflicts, f"{self.name}: locked by another token, no lock taken: {', '.join(conflicts)}"
            )

    def update_state(
        self,
        token: str,
        updates: Mapping[str, Any] | None = None,
        removals: Iterable[str] = (),
    ) -> int:
        """Set `updates` and remove `removals` together, as `token`; returns the new version.

        Values must be JSON-serialisable. Either every update and removal
        applies, in one write, or nothing changes. Removing a missing key is
        fine.

        Raises:
            ResourceLockedError: another token locks some of the keys (named
                in `.keys`); nothing changed.
            TypeError / ValueError: a value is not JSON-serialisable (nothing changed).
            StoreError: the document would exceed the store's value size
                limit (nothing changed), or the store failed.
            CasConflict: the dictionary kept changing for `cas_timeout` seconds.
        """
        new_values = dict(updates or {})
        doomed = set(removals)
        both = doomed.intersection(new_values)
        if both:
            raise ValueError(f"keys both updated and removed: {', '.join(sorted(both))}")
        # Fail before touching the store if a value cannot be stored.
        json.dumps(new_values, allow_nan=False)

        def step(raw: bytes | None) -> tuple[bytes, int]:
            document = _Document.decode(self.key, raw)
            document.prune(now())
            conflicts = document.blocked(token, [*new_values, *doomed])
            if conflicts:
                listed = ", ".join(conflicts)
                message = f"{self.name}: locked by another token, nothing changed: {listed}"
                raise ResourceLockedError(conflicts, message)
            document.values.update(new_values)
            for key in doomed:
                document.values.pop(key, None)
            document.version += 1
            return document.encode(), document.version

        return cas_loop(self.bucket, self.key, step, timeout=self.cas_timeout)

    # -- change buffer ----------------------------------------------------

    def subscribe(self, *, include_current: bool = True) -> Subscription:
        """A change buffer; its first read delivers the current content unless `include_current` is False."""
        return Subscription(self, include_current=include_current)


class Subscription:
    """Polls a `StateDictionary` and delivers merged changes since the last read.

    Cheap to keep (it holds a copy of the last content it delivered); each
    poll reads the whole document once.
    """

    def __init__(self, state: StateDictionary, *, include_current: bool = True) -> None:
        self.state = state
        self._known: dict[str, Any] = {}
        self.version = 0
        if not include_current:
            document = state._document()
            self._known, self.version = document.values, document.version

    def poll(self) -> Change:
        """The changes since the last read (empty, and falsy, when there are none)."""
        document = self.state._document()
        change = Change(version=document.version)
        for key, value in document.values.items():
            if key not in self._known or self._known[key] != value:
                change.updates[key] = value
        change.removals = {key for key in self._known if key not in document.values}
        self._known, self.version = document.values, document.version
        return change

    def wait(self, timeout: float, *, interval: float = 0.02, max_interval: float = 0.5) -> Change:
        """Poll (with backoff from `interval` to `max_interval`) until a change arrives or `timeout` passes.

        Returns the change, or an empty one on timeout.
        """
        deadline = Deadline(timeout)
        backoff = Backoff(interval, max_interval, 1.5)
        while True:
            change = self.poll()
            if change or deadline.expired():
                return change
            backoff.wait(deadline)

    def changes(
        self, timeout: float, *, interval: float = 0.02, max_interval: float = 0.5
    ) -> Iterator[Change]:
        """Yield each non-empty change as it is seen, for `timeout` seconds in total."""
        deadline = Deadline(timeout)
        while not deadline.expired():
            change = self.wait(deadline.remaining(), interval=interval, max_interval=max_interval)
            if change:
                yield change
