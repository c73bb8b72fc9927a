"""wasi:keyvalue@0.2.0-draft2 host implementation: one module per WIT interface."""

from __future__ import annotations

from wasmtime.component import Linker

from . import atomics_iface, batch_iface, store_iface
from .session import KeyValueSession, StoreResolver

__all__ = ["KeyValueSession", "StoreResolver", "add_to_linker"]


def add_to_linker(linker: Linker, sessions: dict[int, KeyValueSession]) -> None:
    """Define store, atomics and batch in `linker`.

    Host functions find the calling instance's session in `sessions`, keyed by
    the address of the wasmtime store context the call runs in.
    """
    with linker.root() as root:
        for module in (store_iface, atomics_iface, batch_iface):
            with root.add_instance(module.INTERFACE) as instance:
                module.define(instance, sessions)
