"""Errors of the coordination primitives (counters, locks, state, cache).

Pure Python: importing this module does not need the guest runtime.

These are *outcomes of coordination*, not store failures, so they do not
derive from `wasikv_sdk.errors.KeyValueError`: an `except KeyValueError`
meant for "the store failed or refused" never swallows a lock timeout, and
vice versa. Store failures raised while a primitive works (`StoreError`,
`NoSuchStore`, `AccessDenied`, and `CasConflict` when a bounded retry loop
gives up) propagate unchanged.

::

    CoordinationError
    ├── CorruptRecord          (also a ValueError)
    ├── LockError
    │   ├── LockTimeout        (also a TimeoutError)
    │   ├── NotLockOwner
    │   └── LockExists
    ├── ResourceLockedError
    ├── CacheComputeError
    └── CacheWaitTimeout       (also a TimeoutError)
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "CacheComputeError",
    "CacheWaitTimeout",
    "CoordinationError",
    "CorruptRecord",
    "LockError",
    "LockExists",
    "LockTimeout",
    "NotLockOwner",
    "ResourceLockedError",
]


class CoordinationError(Exception):
    """Base class of every error the coordination primitives raise themselves."""


class CorruptRecord(CoordinationError, ValueError):
    """A key holds something that is not the primitive's format (written by other code)."""


class LockError(CoordinationError):
    """Base class of the errors of `wasikv_sdk.locks.Lock`."""


class LockTimeout(LockError, TimeoutError):
    """`acquire` used up its tries while another owner held the lock."""


class NotLockOwner(LockError):
    """`release`/`refresh` of a lock this object does not hold (never acquired, released, or taken over)."""


class LockExists(LockError):
    """`acquire` with `fail_if_exists=True` found the lock held by another owner."""


class ResourceLockedError(CoordinationError):
    """Keys of a `StateDictionary` are locked by another token; `keys` names them (sorted)."""

    def __init__(self, keys: Iterable[str], message: str | None = None) -> None:
        self.keys: list[str] = sorted(keys)
        super().__init__(message or f"locked by another token: {', '.join(self.keys)}")


class CacheComputeError(CoordinationError):
    """The computation of a cache entry failed; raised to every caller that waited for it.

    `type_name` is the class name of the exception the computing caller's
    function raised (or the name given to `Cache.set(..., error=...)`) and
    `message` its text: the exception object itself cannot cross processes.
    """

    def __init__(self, key: str, type_name: str, message: str) -> None:
        self.key = key
        self.type_name = type_name
        self.message = message
        super().__init__(f"computing cache entry {key!r} failed: {type_name}: {message}")


class CacheWaitTimeout(CoordinationError, TimeoutError):
    """Another caller's computation of a cache entry did not finish within `wait_timeout`."""
