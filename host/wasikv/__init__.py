"""wasikv: a wasi:keyvalue host for Python, on wasmtime-py.

Embed it with `Host`, which maps store labels to stores, runs components and
gives host code the same buckets guests see.
"""

from __future__ import annotations

from .bucket import Bucket, Cas
from .errors import (
    AccessDenied,
    CasConflict,
    ComponentError,
    ConfigError,
    GuestInterrupted,
    GuestTimeout,
    GuestTrap,
    KeyValueError,
    LimitExceeded,
    NoSuchStore,
    StoreError,
    WasikvError,
)
from .host import DEFAULT_STORE_URL, Host
from .instance_pool import InstancePool
from .limits import Limits
from .stores import MemoryStore, SqliteStore, Store, open_store

__all__ = [
    "DEFAULT_STORE_URL",
    "AccessDenied",
    "Bucket",
    "Cas",
    "CasConflict",
    "ComponentError",
    "ConfigError",
    "GuestInterrupted",
    "GuestTimeout",
    "GuestTrap",
    "Host",
    "InstancePool",
    "KeyValueError",
    "LimitExceeded",
    "Limits",
    "MemoryStore",
    "NoSuchStore",
    "SqliteStore",
    "Store",
    "StoreError",
    "WasikvError",
    "open_store",
]
