"""The Pythonic bucket API as structural types.

`wasikv_sdk.key_value.Bucket` (inside a guest) implements `BucketProtocol`, and
host-side buckets can implement it too, so code written against the protocol
runs on either side. Pure Python: importing this module does not need the
guest runtime.

Every method may raise the exceptions of `wasikv_sdk.errors`:
`NoSuchStore`, `AccessDenied`, `StoreError` (any other store failure,
including exceeded limits) and, for compare-and-swap, `CasConflict`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

__all__ = ["BucketProtocol", "CasHandle"]


@runtime_checkable
class CasHandle(Protocol):
    """A compare-and-swap handle pinned to the version of one key.

    `current` is the value the handle was pinned to (None when the key did
    not exist). `swap` writes only if the key was neither written nor deleted
    since; it raises `CasConflict` otherwise. A handle is good for one
    `swap`.
    """

    @property
    def current(self) -> bytes | None:
        """The value at the pinned version; None when the key was missing."""
        ...

    def swap(self, value: bytes) -> None:
        """Write `value` if the key is unchanged; raise `CasConflict` if it changed."""
        ...


@runtime_checkable
class BucketProtocol(Protocol):
    """One key-value namespace, with Pythonic names and types."""

    def get(self, key: str) -> bytes | None:
        """The value of `key`, or None when the key does not exist."""
        ...

    def set(self, key: str, value: bytes) -> None:
        """Create or replace `key`."""
        ...

    def delete(self, key: str) -> None:
        """Remove `key`; removing a missing key succeeds."""
        ...

    def exists(self, key: str) -> bool:
        """Whether `key` exists (a key with an empty value exists)."""
        ...

    def keys(self, prefix: str | None = None) -> Iterator[str]:
        """Every key (starting with `prefix` if given), in ascending order."""
        ...

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes | None]:
        """The values of `keys`; None for missing keys."""
        ...

    def set_many(self, items: Mapping[str, bytes] | Iterable[tuple[str, bytes]]) -> None:
        """Set every pair."""
        ...

    def delete_many(self, keys: Iterable[str]) -> None:
        """Delete every key; missing keys are ignored."""
        ...

    def increment(self, key: str, delta: int = 1) -> int:
        """Atomically add `delta` to the decimal counter at `key` (missing = 0); return the new value."""
        ...

    def cas(self, key: str) -> AbstractContextManager[CasHandle]:
        """A context manager yielding a `CasHandle` pinned to `key`'s current version."""
        ...

    def update(self, key: str, fn: Callable[[bytes | None], bytes], *, max_attempts: int = 100) -> bytes:
        """Atomically set `key` to `fn(current)`, retrying on conflicts; return the written value."""
        ...
