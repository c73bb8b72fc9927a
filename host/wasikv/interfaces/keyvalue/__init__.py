"""The wasi:keyvalue host: one module per WIT interface, each in every shape wasikv serves.

Guests are built against three WITs of wasi:keyvalue: Spin's copy of
0.2.0-draft2 (wasikv's own SDK), upstream's 0.2.0-draft2 and 0.2.0-draft.
Each interface module declares its variants; typed linking gives a component
the variants its imports match, all from one shape (see `linking`).
"""

from __future__ import annotations

from ...runtime.host_functions import HostInterface
from . import atomics_iface, batch_iface, store_iface
from .cursor import NumberedCursors
from .session import KeyValueSession, StoreResolver
from .wit import (
    DRAFT2_SHAPES,
    DRAFT_SHAPE,
    SPIN_DRAFT2_SHAPE,
    UPSTREAM_DRAFT2_SHAPE,
)

#: Every wasi:keyvalue interface variant wasikv implements.
INTERFACES: tuple[HostInterface, ...] = (
    store_iface.DRAFT2,
    atomics_iface.DRAFT2,
    batch_iface.SPIN,
    batch_iface.UPSTREAM,
    store_iface.DRAFT,
    atomics_iface.DRAFT,
    batch_iface.DRAFT,
)

__all__ = [
    "DRAFT2_SHAPES",
    "DRAFT_SHAPE",
    "INTERFACES",
    "SPIN_DRAFT2_SHAPE",
    "UPSTREAM_DRAFT2_SHAPE",
    "KeyValueSession",
    "NumberedCursors",
    "StoreResolver",
]
