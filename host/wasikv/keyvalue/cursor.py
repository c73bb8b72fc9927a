"""Opaque `list-keys` cursors.

A cursor names the last key of the previous page; the next page starts
strictly after it. Keys are sorted, so a walk without interleaving writes
returns every key exactly once, and a cursor stays valid across processes.
"""

from __future__ import annotations

import base64
import binascii

from ..errors import StoreError

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
