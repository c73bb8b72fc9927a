"""What every backend checks, and says, the same way: argument checks, the closed guard,
the words for a write whose outcome is unknown, and the feed's window policy."""

from __future__ import annotations

import math

from ..errors import StoreError
from .base import S64_MAX, S64_MIN, check_key, check_position_name

#: Deletes a store remembers as tombstones (so a `swap` pinned before a delete fails).
DEFAULT_TOMBSTONE_WINDOW = 100_000
#: Changes the feed keeps (at least; backends sweep older ones now and then).
DEFAULT_CHANGE_WINDOW = 100_000
#: Deletes between two tombstone sweeps, and writes between two change-feed
#: sweeps (fewer when the window is smaller).
PRUNE_INTERVAL = 1000
#: Appended to a write's error when its reply was lost: writes are never retried,
#: since sending an increment again could apply it twice.
UNKNOWN_OUTCOME = "the write may or may not have been applied"


def check_windows(tombstone_window: int, change_window: int) -> None:
    """`ValueError` unless both windows hold at least one entry."""
    if tombstone_window < 1:
        raise ValueError("tombstone_window must be at least 1")
    if change_window < 1:
        raise ValueError("change_window must be at least 1")


def prune_every(window: int) -> int:
    """How many deletes (or writes) pass between two sweeps of a window of `window` entries."""
    return min(PRUNE_INTERVAL, window)


def check_port(port: int) -> None:
    """`ValueError` unless `port` is a TCP port number."""
    if not 0 < port < 65536:
        raise ValueError(f"port must be between 1 and 65535, not {port}")


def check_seconds(name: str, seconds: float, *, at_most: float | None = None) -> None:
    """`ValueError` unless `seconds` is a positive finite number (no more than `at_most`)."""
    if not (math.isfinite(seconds) and seconds > 0 and (at_most is None or seconds <= at_most)):
        bound = "" if at_most is None else f" (at most {at_most:g})"
        raise ValueError(f"{name} must be a positive number of seconds{bound}, not {seconds!r}")


def closed(where: str) -> StoreError:
    """The error of an operation on a closed store; `where` names the store."""
    return StoreError(f"{where}: the store is closed")


def check_delta(key: str, delta: int) -> None:
    """Refuse an increment whose `delta` is not an s64 int."""
    if type(delta) is not int or not S64_MIN <= delta <= S64_MAX:
        raise StoreError(f"increment: delta {delta!r} for key {key!r} is not an s64 integer")


def check_version(backend: str, version: int) -> None:
    """Refuse a `swap` version that is not an int."""
    if type(version) is not int:
        raise StoreError(f"{backend} store: version must be int, not {type(version).__name__}")


def check_cursor(backend: str, after: str | None) -> None:
    """Refuse a `list_keys` cursor that is neither None nor a `str`."""
    if after is not None and type(after) is not str:
        raise StoreError(f"{backend} store: cursor must be str, not {type(after).__name__}")


def encode_key(backend: str, key: str) -> bytes:
    """`key` as UTF-8; `StoreError` for a non-`str` key or a lone surrogate."""
    check_key(backend, key)
    try:
        return key.encode("utf-8")
    except UnicodeEncodeError:
        raise StoreError(f"{backend} store: key {key!r} is not valid Unicode text (lone surrogate)") from None


def encode_name(backend: str, name: str) -> bytes:
    """A change-feed reader name as UTF-8; `StoreError` for a lone surrogate."""
    try:
        return name.encode("utf-8")
    except UnicodeEncodeError:
        raise StoreError(f"{backend} store: position name {name!r} is not valid Unicode text") from None


def check_lease(backend: str, name: str, seconds: float) -> int:
    """`seconds` as whole milliseconds (at least 1); `StoreError` for a non-`str` name or bad seconds."""
    check_position_name(backend, name)
    if type(seconds) not in (int, float) or not (math.isfinite(seconds) and 0 < seconds <= 86400):
        raise StoreError(f"{backend} store: lease time must be 0 to 86400 seconds, not {seconds!r}")
    return max(1, round(seconds * 1000))


def check_holder(backend: str, holder: str) -> None:
    """Refuse a lease holder (or group member) name that is not a `str`."""
    if type(holder) is not str:
        raise StoreError(f"{backend} store: lease holder must be str, not {type(holder).__name__}")


def check_token(backend: str, token: int) -> None:
    """Refuse a fencing token that is not a positive int."""
    if type(token) is not int or not 0 < token <= S64_MAX:
        raise StoreError(f"{backend} store: lease token must be a positive int, not {token!r}")
