"""The store protocol every backend implements, and the counter format they share."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar, NamedTuple

# Re-exported (`as`): the backends import the bounds from here.
from wasikv_sdk.constants import S64_MAX as S64_MAX
from wasikv_sdk.constants import S64_MIN as S64_MIN

from ..errors import CorruptPosition, StoreError

# Canonical decimal only: the same text Redis' INCRBY accepts and produces.
_DECIMAL = re.compile(rb"0|-?[1-9][0-9]{0,18}")


class Change(NamedTuple):
    """One committed write, as the change feed reports it.

    `seq` is the version the write gave the key (the store-wide sequence
    number), `value` the value written, or None for a delete.
    """

    seq: int
    key: str
    value: bytes | None


class LeaseState(NamedTuple):
    """What `Store.acquire_lease` found.

    `acquired` says whether the caller holds the lease now. `token` is the
    lease's fencing token (the caller's new one when acquired, the current
    holder's otherwise): every acquisition gets a larger one, expiries and
    releases never lower it. `holder` is who holds it, or held it last and
    let it expire ('' if it was released, or nobody ever held it): when
    acquired, a holder there means a takeover. `claimed` is the seq the last
    holder said it was delivering through (0: none).
    """

    acquired: bool
    token: int
    holder: str
    claimed: int


class Versioned(NamedTuple):
    """A value (or its absence) together with the version it was read at.

    Two reads of one key return equal versions only if the key was neither
    written nor deleted in between, even when the bytes are identical.
    """

    value: bytes | None
    version: int


def parse_counter(key: str, raw: bytes | None) -> int:
    """Read a stored counter; a missing key counts as 0."""
    if raw is None:
        return 0
    if _DECIMAL.fullmatch(raw) is None:
        shown = raw[:32].decode("utf-8", "replace")
        raise StoreError(f"increment: value of key {key!r} is not a decimal integer: {shown!r}")
    value = int(raw)
    if not S64_MIN <= value <= S64_MAX:
        raise StoreError(f"increment: value of key {key!r} is outside the s64 range")
    return value


def add_delta(key: str, current: int, delta: int) -> int:
    """`current + delta`, refusing results outside s64 as Redis does."""
    result = current + delta
    if not S64_MIN <= result <= S64_MAX:
        raise StoreError(f"increment: {current} + {delta} on key {key!r} overflows s64")
    return result


def check_key(backend: str, key: str) -> None:
    """Refuse a key that is not a `str` (a caller bug that would corrupt the store)."""
    if type(key) is not str:
        raise StoreError(f"{backend} store: key must be str, not {type(key).__name__}")


def check_item(backend: str, key: str, value: bytes) -> None:
    """Refuse a non-`str` key or a non-`bytes` value."""
    check_key(backend, key)
    if type(value) is not bytes:
        raise StoreError(f"{backend} store: value of key {key!r} must be bytes, not {type(value).__name__}")


def check_position_name(backend: str, name: str) -> None:
    """Refuse a change-feed reader name that is not a `str`."""
    if type(name) is not str:
        raise StoreError(f"{backend} store: position name must be str, not {type(name).__name__}")


def check_position(backend: str, name: str, seq: int) -> None:
    """Refuse a non-`str` reader name, or a position that is not an int from 0 to 2**63-1."""
    check_position_name(backend, name)
    if type(seq) is not int or not 0 <= seq <= S64_MAX:
        raise StoreError(f"{backend} store: position {name!r} must be an int from 0 to 2**63-1, not {seq!r}")


def loaded_position(where: str, name: str, raw: object, delete: str, *, text: bool = False) -> int:
    """`raw`, a position read back from a store, as an int; `CorruptPosition` if it is not one.

    `save_position` only writes ints from 0 to 2**63-1, so anything else got
    there around wasikv. With `text`, `raw` is the position's decimal text
    (Redis keeps it so). The error names the store (`where`), the position
    and what it holds, and says what to do: delete it (`delete` says how) to
    start from the store's newest change, or set it to the seq to resume
    after. Nothing is guessed: a corrupt position stops its trigger.
    """
    value = raw
    if text and type(raw) is bytes and _DECIMAL.fullmatch(raw):
        value = int(raw)
    if type(value) is int and 0 <= value <= S64_MAX:
        return value
    raise CorruptPosition(
        f"{where}: the watch position {name!r} holds {_shown(value, text)}, not a change number "
        "(written around wasikv?). Delete it to start the trigger from the store's newest change "
        f"(changes written while it was stopped are then not delivered): {delete}; or set it to the "
        "seq of the last change the trigger handled, to resume after that change"
    )


def _shown(raw: object, text: bool) -> str:
    if type(raw) is bytes:
        if text:
            return f"the text {raw[:40].decode('utf-8', 'replace')!r}"
        return f"a blob of {len(raw)} bytes"
    if type(raw) is str:
        return f"the text {raw[:40]!r}"
    if type(raw) is int:
        return f"{raw}, a negative number" if raw < 0 else f"{raw}, past 2**63-1"
    return f"{type(raw).__name__} {str(raw)[:40]}"


# `increment_unsigned` gives up after this many lost races in a row.
_MAX_ATTEMPTS = 1000


def unsigned_refusal(key: str, result: int) -> str:
    """Why `increment_unsigned` refused a result below zero."""
    return f"increment: counter {key!r} would be {result}, which a u64 result cannot hold"


def format_counter(value: int) -> bytes:
    """The stored form of a counter: ASCII decimal text."""
    return str(value).encode("ascii")


class Store(ABC):
    """A key-value store: the operations wasi:keyvalue needs, nothing more.

    Every method raises `StoreError` (never anything else) when the backend
    fails. Implementations are safe to call from several threads at once.
    """

    #: Whether `set_many`/`delete_many` apply all-or-nothing.
    atomic_batches: ClassVar[bool] = False
    #: Whether acknowledged writes outlive the process (and survive its crash).
    durable: ClassVar[bool] = False
    #: Whether other processes (and machines) can share the same data.
    cross_process: ClassVar[bool] = False
    #: Whether `changes`/`last_change` work (watch triggers need them).
    has_change_feed: ClassVar[bool] = False
    #: The URL this store was opened from.
    url: str

    @abstractmethod
    def get(self, key: str) -> bytes | None:
        """The value of `key`, or None when it does not exist."""

    @abstractmethod
    def get_versioned(self, key: str) -> Versioned:
        """The value of `key` and the version it was read at (for CAS)."""

    @abstractmethod
    def set(self, key: str, value: bytes) -> None:
        """Create or replace `key`."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove `key`; a missing key is not an error."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether `key` exists (an empty value exists)."""

    @abstractmethod
    def list_keys(self, after: str | None, limit: int) -> list[str]:
        """Up to `limit` keys greater than `after` (all keys if None), ascending."""

    @abstractmethod
    def increment(self, key: str, delta: int) -> int:
        """Atomically add `delta` to the decimal counter at `key`; return the new value."""

    def increment_unsigned(self, key: str, delta: int) -> int:
        """Add `delta` (0 to S64_MAX) to the counter at `key`, refusing a negative result.

        wasi:keyvalue@0.2.0-draft's u64 increment: a result below zero is
        refused (`StoreError`) before it is written, never after. This is a
        compare-and-swap loop on `get_versioned` and `swap`; a store that can
        check and write in one atomic step overrides it.
        """
        for _ in range(_MAX_ATTEMPTS):
            current = self.get_versioned(key)
            result = add_delta(key, parse_counter(key, current.value), delta)
            if result < 0:
                raise StoreError(unsigned_refusal(key, result))
            if self.swap(key, current.version, format_counter(result)):
                return result
        raise StoreError(f"increment: key {key!r} changed under {_MAX_ATTEMPTS} attempts in a row")

    @abstractmethod
    def swap(self, key: str, version: int, value: bytes) -> bool:
        """Set `key` to `value` only if it is still at `version`; report success."""

    @abstractmethod
    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values of `keys`, in order, None for missing keys."""

    @abstractmethod
    def set_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Set every pair (atomically where `atomic_batches`)."""

    @abstractmethod
    def delete_many(self, keys: Sequence[str]) -> None:
        """Delete every key (atomically where `atomic_batches`)."""

    # -- change feed -------------------------------------------------------
    #
    # Every committed write (set, delete, increment, successful swap, each
    # item of set_many/delete_many) appends one `Change` whose `seq` is the
    # version the write gave the key. Sequence numbers are consecutive: a
    # feed that starts after `after + 1` was pruned past `after`, and the
    # caller has missed `changes[0].seq - after - 1` changes. Stores keep a
    # bounded window of recent changes. Stores without a feed keep these
    # defaults, which raise `StoreError`.

    #: Whether `wait_for_change` blocks until a write (otherwise callers poll).
    change_notifications: ClassVar[bool] = False

    def changes(self, after: int, limit: int) -> list[Change]:
        """Up to `limit` committed changes with `seq > after`, in ascending `seq` order."""
        raise StoreError(f"{type(self).__name__} does not support change feeds")

    def last_change(self) -> int:
        """The `seq` of the newest committed change (0 before the first write)."""
        raise StoreError(f"{type(self).__name__} does not support change feeds")

    def wait_for_change(self, after: int, timeout: float) -> bool:
        """Wait up to `timeout` seconds for a change with `seq > after`.

        Returns True if there is one. Stores whose `change_notifications` is
        False return False at once, and their readers poll `changes`.
        """
        return False

    # -- change-feed reader positions ----------------------------------------
    #
    # A reader of the feed (a watch trigger) keeps the seq of the last change
    # it handled in the store itself, beside the data and the feed, so that
    # the position lives exactly as long as the feed it refers to. Positions
    # are outside the keyspace (`list_keys` never shows them) and writing one
    # is not a change. Stores that keep none keep these defaults.

    #: Whether saved positions outlive the process (False: there are none, or
    #: they vanish with the process, as the feed itself does).
    keeps_positions: ClassVar[bool] = False

    def load_position(self, name: str) -> int | None:
        """The saved position of the change-feed reader `name`; None if it never saved one."""
        raise StoreError(f"{type(self).__name__} keeps no change-feed positions")

    def save_position(self, name: str, seq: int) -> None:
        """Save `seq` (a non-negative int) as the position of the change-feed reader `name`.

        Names are arbitrary strings of up to a few hundred bytes. Saving
        replaces the previous position; it is not part of the change feed.
        """
        raise StoreError(f"{type(self).__name__} keeps no change-feed positions")

    # -- leases ------------------------------------------------------------
    #
    # Readers of the feed that run on several processes or machines (watch
    # triggers) take turns through leases kept in the store, beside their
    # positions: at most one holder per lease name at a time, each
    # acquisition with a larger fencing token, and a position saved only by
    # the holder of the newest token (`save_fenced`). Expiry is measured by
    # the store's clock (Redis, PostgreSQL, the machine of a SQLite file), so
    # holders on machines whose clocks disagree still see one order.

    #: Whether the lease methods work (otherwise each process reads the feed alone).
    has_leases: ClassVar[bool] = False

    def acquire_lease(self, name: str, holder: str, seconds: float) -> LeaseState:
        """Take the lease `name` for `seconds` if nobody holds it (or its holder let it expire)."""
        raise StoreError(f"{type(self).__name__} keeps no leases")

    def renew_lease(self, name: str, holder: str, token: int, seconds: float) -> bool:
        """Extend the lease to `seconds` from now; False if `token` is no longer its newest."""
        raise StoreError(f"{type(self).__name__} keeps no leases")

    def release_lease(self, name: str, token: int) -> None:
        """Let the lease go at once (if `token` is still its newest), so another may take it.

        The holder is forgotten: whoever takes it next does not take over from it.
        """
        raise StoreError(f"{type(self).__name__} keeps no leases")

    def save_fenced(self, name: str, token: int, seq: int, claimed: int) -> bool:
        """Save position `seq` of reader `name` and the seq it is `claimed` to deliver through.

        Both are saved, in one atomic step, only if `token` is still the
        newest token of the lease `name`; otherwise nothing changes and the
        answer is False (the caller lost the lease).
        """
        raise StoreError(f"{type(self).__name__} keeps no leases")

    def lease_members(self, group: str, member: str, seconds: float) -> int:
        """Record `member` as alive in `group` for `seconds`; how many members are alive now."""
        raise StoreError(f"{type(self).__name__} keeps no leases")

    def overlaps(self, other: Store) -> str | None:
        """Why this store and `other` (another object) share a keyspace, or None when they do not.

        Two labels on one keyspace are one store under two names, which
        defeats grants; `Host.add_store` refuses them with this reason.
        Backends whose URL can name the same data twice (a Redis prefix, a
        PostgreSQL table prefix) override it.
        """
        return None

    def check(self) -> None:
        """Raise `StoreError` unless the store answers now (one cheap read).

        For start-up checks: a server that cannot reach its store says so
        before it serves, instead of failing its first request.
        """
        self.list_keys(None, 1)

    def close(self) -> None:  # noqa: B027 - optional hook; stores without resources keep it
        """Release connections and files; the store is unusable afterwards."""
