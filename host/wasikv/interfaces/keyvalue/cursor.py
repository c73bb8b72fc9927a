"""Opaque `list-keys` cursors.

A cursor names the last key of the previous page; the next page starts
strictly after it. Keys are sorted, so a walk without interleaving writes
returns every key exactly once. String cursors (draft2) carry the key and
stay valid across processes; u64 cursors (0.2.0-draft) stand for it in a
`NumberedCursors` table.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import threading
from collections import OrderedDict

from ...errors import StoreError

_PREFIX = "k1."


def encode(last_key: str) -> str:
    """The cursor for the page after `last_key`."""
    return _PREFIX + base64.urlsafe_b64encode(last_key.encode("utf-8")).decode("ascii")


def decode(cursor: str) -> str:
    """The key a cursor continues after; `StoreError` for anything malformed."""
    if not cursor.startswith(_PREFIX):
        raise StoreError(f"list-keys: malformed cursor {cursor[:64]!r}")
    try:
        raw = base64.urlsafe_b64decode(cursor[len(_PREFIX) :].encode("ascii"))
        return raw.decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise StoreError(f"list-keys: malformed cursor {cursor[:64]!r}") from None


class NumberedCursors:
    """The u64 `list-keys` cursors of wasi:keyvalue@0.2.0-draft.

    A u64 cannot hold a key, so each cursor is a random number standing for
    (label, last key of the page) in this table: a walk with these cursors
    visits every key once, in the same order as with string cursors. The
    table belongs to a `Host`, so a cursor outlives the instance that got it
    (an HTTP guest may hand it to its client), but not the process; it keeps
    the newest `capacity` cursors. An unknown, expired or forged number, or
    one issued for another label, is refused with `StoreError`.
    """

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[int, tuple[str, str]] = OrderedDict()
        self._lock = threading.Lock()

    def issue(self, label: str, last_key: str) -> int:
        """A new cursor for the page after `last_key` of `label`."""
        number = secrets.randbits(64) or 1
        with self._lock:
            self._entries[number] = (label, last_key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        return number

    def resolve(self, number: int, label: str) -> str:
        """The key a cursor continues after; `StoreError` unless it was issued here for `label`."""
        with self._lock:
            entry = self._entries.get(number)
            if entry is not None:
                self._entries.move_to_end(number)
        if entry is None:
            raise StoreError(
                f"list-keys: unknown or expired cursor {number} (u64 cursors are valid in the process "
                f"that issued them, for its newest {self.capacity})"
            )
        if entry[0] != label:
            raise StoreError(f"list-keys: cursor {number} belongs to another bucket")
        return entry[1]
