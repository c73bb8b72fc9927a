"""The store protocol every backend implements, and the counter format they share."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar, NamedTuple

from ..errors import StoreError

S64_MIN = -(2**63)
S64_MAX = 2**63 - 1

# Canonical decimal only: the same text Redis' INCRBY accepts and produces.
_DECIMAL = re.compile(rb"0|-?[1-9][0-9]{0,18}")


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

    def close(self) -> None:  # noqa: B027 - optional hook; stores without resources keep it
        """Release connections and files; the store is unusable afterwards."""
