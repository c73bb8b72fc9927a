"""wasi:keyvalue@0.2.0-draft2 host implementation: one module per WIT interface."""

from __future__ import annotations

from ..host_functions import HostInterface
from . import atomics_iface, batch_iface, store_iface
from .session import KeyValueSession, StoreResolver

#: Every wasi:keyvalue interface wasikv implements.
INTERFACES: tuple[HostInterface, ...] = (
    store_iface.INTERFACE,
    atomics_iface.INTERFACE,
    batch_iface.INTERFACE,
)

__all__ = ["INTERFACES", "KeyValueSession", "StoreResolver"]
