"""wasikv: a wasi:keyvalue host for Python, on wasmtime-py.

Embed it with `Host`, which maps store labels to stores, runs components and
gives host code the same buckets guests see.

The names below are imported on first use (PEP 562), so `import wasikv` and
the `wasikv` command start without loading wasmtime and every backend: a
`wasikv kv get` or `wasikv --help` starts in a fraction of the time.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .allowed_hosts import AllowedHosts
    from .bucket import Bucket, Cas
    from .capability import InstanceSpec
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
    from .host import ExitStatus, Host
    from .instance_reuse import InstanceReuse
    from .limits import Limits
    from .metrics import Metrics
    from .runtime.instance_pool import InstancePool
    from .server.asgi import WasikvApp, create_app
    from .stores import MemoryStore, SqliteStore, Store, open_store
    from .stores.registry import DEFAULT_STORE_URL

#: Where each public name is defined.
_MODULES = {
    "DEFAULT_STORE_URL": ".stores.registry",
    "ExitStatus": ".host",
    "AccessDenied": ".errors",
    "AllowedHosts": ".allowed_hosts",
    "Bucket": ".bucket",
    "Cas": ".bucket",
    "CasConflict": ".errors",
    "ComponentError": ".errors",
    "ConfigError": ".errors",
    "GuestInterrupted": ".errors",
    "GuestTimeout": ".errors",
    "GuestTrap": ".errors",
    "Host": ".host",
    "InstancePool": ".runtime.instance_pool",
    "InstanceReuse": ".instance_reuse",
    "InstanceSpec": ".capability",
    "KeyValueError": ".errors",
    "LimitExceeded": ".errors",
    "Limits": ".limits",
    "Metrics": ".metrics",
    "MemoryStore": ".stores",
    "NoSuchStore": ".errors",
    "SqliteStore": ".stores",
    "Store": ".stores",
    "StoreError": ".errors",
    "WasikvApp": ".server.asgi",
    "WasikvError": ".errors",
    "create_app": ".server.asgi",
    "open_store": ".stores",
}

__all__ = [
    "DEFAULT_STORE_URL",
    "AccessDenied",
    "AllowedHosts",
    "Bucket",
    "Cas",
    "CasConflict",
    "ComponentError",
    "ConfigError",
    "ExitStatus",
    "GuestInterrupted",
    "GuestTimeout",
    "GuestTrap",
    "Host",
    "InstancePool",
    "InstanceReuse",
    "InstanceSpec",
    "KeyValueError",
    "LimitExceeded",
    "Limits",
    "MemoryStore",
    "Metrics",
    "NoSuchStore",
    "SqliteStore",
    "Store",
    "StoreError",
    "WasikvApp",
    "WasikvError",
    "create_app",
    "open_store",
]


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module, __name__), name)
        globals()[name] = value  # found directly from now on
        return value
    # `wasikv.stores` and the other submodules, as when this package imported them all.
    if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'wasikv' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
