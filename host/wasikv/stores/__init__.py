"""Store backends and the URLs that select them (see `registry` for the list)."""

from __future__ import annotations

from .base import Store, Versioned
from .memory import MemoryStore
from .registry import BACKENDS, Backend, backend_for_url
from .sqlite import SqliteStore

__all__ = ["BACKENDS", "Backend", "MemoryStore", "SqliteStore", "Store", "Versioned", "open_store"]


def open_store(url: str, *, label: str | None = None) -> Store:
    """Open the store a URL names.

    `memory:` and `memory:NAME` give a fresh in-memory store (callers that want
    components to share one cache stores by URL). `sqlite:PATH` and
    `sqlite:///ABSOLUTE/PATH` open a SQLite file; the path is percent-decoded
    and may be followed by `?busy_timeout=MS&synchronous=normal|full`.
    `redis://` and `rediss://` URLs open a `RedisStore` (needs the
    `wasikv[redis]` extra) whose keys live under `?prefix=`, by default
    `wasikv:{label}:` (`wasikv:default:` without a label); backends whose
    registry entry is `per_label` use `label`. Raises `InvalidStoreUrl` (a
    `ConfigError`) for anything else.
    """
    return backend_for_url(url).open(url, label)
