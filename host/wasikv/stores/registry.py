"""The store backends: one entry per backend, looked up by URL scheme or runtime-config type.

A backend is one module plus one `Backend` entry here. The module provides
the `Store` subclass and two functions:

- `open_url(url, *, label) -> Store`: open the store a URL names (backends
  whose entry says `per_label` keep each label apart under one URL);
- `config_url(label, table, base, state_dir) -> str`: the URL a
  runtime-config table (`[key_value_store.LABEL]`) stands for, with
  relative paths against `base` (the config's directory) and the app's
  state directory for defaults, raising `ValueError` with what to fix.

The module is imported only when a store of its kind is opened, so a
backend's client library (redis-py, psycopg) is needed only by those who use
it; a missing one is a `ConfigError` saying which extra to install. What a
store can do is on the store class itself (`Store.has_change_feed`,
`keeps_positions`, `change_notifications`, `atomic_batches`, `durable`,
`cross_process`).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import cast

from ..errors import ConfigError
from ._url import redact
from .base import Store

#: The store behind the label `default` when none is configured.
DEFAULT_STORE_URL = "sqlite:.wasikv/default.db"


@dataclass(frozen=True)
class Backend:
    """One kind of store: how it is selected, where it lives, how it is opened."""

    name: str
    #: URL schemes that select it (`redis`, `rediss`).
    schemes: tuple[str, ...]
    #: Runtime-config `type` values that select it (`sqlite` and Spin's `spin`).
    config_types: tuple[str, ...]
    #: Runtime-config keys it accepts besides `type`.
    config_keys: tuple[str, ...]
    #: The module with the store, `open_url` and `config_url`.
    module: str
    #: The accepted URL forms, for messages.
    url_forms: str
    #: One URL serves several labels, each in a keyspace of its own.
    per_label: bool = False
    #: The pip extra that brings its client library, if it needs one.
    extra: str | None = None

    def open(self, url: str, label: str | None) -> Store:
        """Open the store `url` names (for `label`, where that matters)."""
        opener = cast(Callable[..., Store], self._load(url).open_url)
        return opener(url, label=label)

    def config_url(self, label: str, table: Mapping[str, object], base: Path, state_dir: Path) -> str:
        """The URL a runtime-config table stands for; `ValueError` says what to fix."""
        module = self._load(f"type = {self.config_types[0]!r}")
        convert = cast(Callable[..., str], module.config_url)
        return convert(label, table, base, state_dir)

    def _load(self, what: str) -> ModuleType:
        try:
            return importlib.import_module(self.module)
        except ImportError as exc:
            if self.extra is None or exc.name == self.module:
                raise
            raise ConfigError(
                f"{what}: {self.name} stores need the {exc.name} package; install it with "
                f"{install_hint(self.extra)}"
            ) from None


def install_hint(extra: str) -> str:
    """A command that installs `extra` whether wasikv came from an index or a path."""
    return f"{sys.executable} -m pip install 'wasikv[{extra}]' (or 'PATH/TO/wasikv[{extra}]' for a checkout)"


BACKENDS: tuple[Backend, ...] = (
    Backend(
        "memory",
        schemes=("memory",),
        config_types=("memory",),
        config_keys=(),
        module="wasikv.stores.memory",
        url_forms="'memory:' or 'memory:NAME'",
    ),
    Backend(
        "sqlite",
        schemes=("sqlite",),
        config_types=("sqlite", "spin"),
        config_keys=("path",),
        module="wasikv.stores.sqlite",
        url_forms="'sqlite:PATH' (relative to the working directory) or 'sqlite:///ABSOLUTE/PATH', "
        "optionally followed by '?busy_timeout=MS&synchronous=normal|full'",
    ),
    Backend(
        "redis",
        schemes=("redis", "rediss"),
        config_types=("redis",),
        config_keys=("url",),
        module="wasikv.stores.redis",
        url_forms="'redis://[USER:PASSWORD@]HOST[:PORT][/DB]' or 'rediss://…' (TLS), optionally followed by "
        "'?prefix=P&socket_timeout=S&connect_timeout=S&max_connections=N'",
        per_label=True,
        extra="redis",
    ),
    Backend(
        "postgres",
        schemes=("postgres", "postgresql"),
        config_types=("postgres",),
        config_keys=("url",),
        module="wasikv.stores.postgres",
        url_forms="'postgres://[USER[:PASSWORD]@]HOST[:PORT]/DBNAME' or 'postgresql://…', optionally "
        "followed by '?schema=S&table_prefix=T&connect_timeout=S&statement_timeout=S&min_size=N&max_size=N"
        "&sslmode=MODE&sslrootcert=PATH'",
        per_label=True,
        extra="postgres",
    ),
)


def _by_scheme() -> dict[str, Backend]:
    return {scheme: backend for backend in BACKENDS for scheme in backend.schemes}


def backend_for_url(url: str) -> Backend:
    """The backend a store URL selects; `ConfigError` for an unknown or missing scheme."""
    scheme, colon, _ = url.partition(":")
    backend = _by_scheme().get(scheme.lower()) if colon else None
    if backend is None:
        accepted = "; ".join(b.url_forms for b in BACKENDS)
        problem = "has no scheme" if not colon else f"has an unknown scheme {scheme.lower()!r}"
        raise ConfigError(f"store URL {redact(url)!r} {problem}; accepted forms: {accepted}")
    return backend


def backend_for_type(kind: str) -> Backend | None:
    """The backend a runtime-config `type` selects, None if no backend has that type."""
    return next((b for b in BACKENDS if kind in b.config_types), None)


def config_types() -> list[str]:
    """Every runtime-config `type` any backend accepts, in registry order."""
    return [kind for backend in BACKENDS for kind in backend.config_types]


__all__ = [
    "BACKENDS",
    "DEFAULT_STORE_URL",
    "Backend",
    "backend_for_type",
    "backend_for_url",
    "config_types",
    "install_hint",
]
