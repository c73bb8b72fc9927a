"""The runtime config: which backend each store label uses, in Spin's format.

```toml
[key_value_store.default]
type = "sqlite"            # "spin" means the same; path is relative to this file
path = "data/app.db"       # default: .wasikv/LABEL.db next to the manifest

[key_value_store.cache]
type = "memory"            # gone when the process exits

[key_value_store.shared]
type = "redis"
url = "redis://localhost:6379/0"
```

`load_runtime_config` turns it into `{label: store URL}` for `wasikv.Host`.
The label `default` is always defined: a SQLite file at `.wasikv/default.db`
next to the manifest unless the runtime config says otherwise.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from ..errors import ConfigError
from ..stores.registry import backend_for_type, config_types
from ..stores.sqlite import url_for_path
from ._toml import parse_toml, read_text, toml_key
from .manifest import STATE_DIR

__all__ = [
    "DEFAULT_LABEL",
    "RUNTIME_CONFIG_NAME",
    "RuntimeConfigError",
    "default_store_url",
    "load_runtime_config",
    "parse_runtime_config",
    "sqlite_url",
]

#: The runtime config's file name, looked for next to the manifest.
RUNTIME_CONFIG_NAME = "runtime-config.toml"
#: The label every app has.
DEFAULT_LABEL = "default"

_SPIN_TYPES = {
    "azure_cosmos": "Azure Cosmos DB",
    "aws_dynamo": "AWS DynamoDB",
}
_SPIN_TABLES = (
    "sqlite_database",
    "llm_compute",
    "variables_provider",
    "config_provider",
    "vault_variables",
    "outbound_networking",
    "otel",
    "client_tls",
)


class RuntimeConfigError(ConfigError):
    """The runtime config is wrong; the message names the file and what to fix."""


def sqlite_url(path: Path) -> str:
    """The store URL of a SQLite file (absolute, percent-encoded so any file name works)."""
    return url_for_path(path)


def default_store_url(label: str, manifest_dir: str | Path) -> str:
    """Where a label's SQLite store lives when nothing says otherwise: `.wasikv/LABEL.db`."""
    return url_for_path(Path(manifest_dir) / STATE_DIR / f"{quote(label, safe='')}.db")


def load_runtime_config(path: str | Path | None, *, manifest_dir: str | Path) -> dict[str, str]:
    """Read a runtime config file (None: just the defaults) into `{label: store URL}`."""
    if path is None:
        return parse_runtime_config("", None, manifest_dir=manifest_dir)
    path = Path(path)
    text = read_text(path, RuntimeConfigError, "runtime config", "create it, or fix --runtime-config-file")
    return parse_runtime_config(text, path, manifest_dir=manifest_dir)


def parse_runtime_config(text: str, path: str | Path | None, *, manifest_dir: str | Path) -> dict[str, str]:
    """Check runtime config `text` as if read from `path`; see `load_runtime_config`."""
    shown = str(path) if path is not None else RUNTIME_CONFIG_NAME
    base = Path(os.path.abspath(path)).parent if path is not None else Path(os.path.abspath(manifest_dir))
    manifest_dir = Path(os.path.abspath(manifest_dir))

    def fail(where: str, problem: str) -> RuntimeConfigError:
        return RuntimeConfigError(f"{shown}: {where}: {problem}" if where else f"{shown}: {problem}")

    document = parse_toml(text, shown, RuntimeConfigError)
    for key in document:
        if key == "key_value_store":
            continue
        problem = f"unknown table or key {key!r}"
        if key in _SPIN_TABLES:
            problem = f"[{key}] is a Spin setting wasikv does not support; remove it"
        elif close := difflib.get_close_matches(key, ["key_value_store"], n=1):
            problem += f" (did you mean {close[0]!r}?)"
        raise fail("", f"{problem}; wasikv's runtime config has only [key_value_store.LABEL] tables")
    stores = document.get("key_value_store", {})
    if not isinstance(stores, dict):
        raise fail(
            "", "'key_value_store' must hold tables: write [key_value_store.LABEL] with type = \"...\""
        )
    urls: dict[str, str] = {}
    for label, body in stores.items():
        where = f"[key_value_store.{toml_key(label)}]"
        if not label.strip():
            raise fail(
                "[key_value_store]", "a store has an empty label; name it, as in [key_value_store.cache]"
            )
        urls[label] = _store_url(label, body, where, fail, base, manifest_dir)
    urls.setdefault(DEFAULT_LABEL, default_store_url(DEFAULT_LABEL, manifest_dir))
    return urls


def _store_url(
    label: str,
    body: object,
    where: str,
    fail: Callable[[str, str], RuntimeConfigError],
    base: Path,
    manifest_dir: Path,
) -> str:
    kinds = config_types()
    types = ", ".join(repr(t) for t in kinds)
    if not isinstance(body, dict):
        raise fail(where, f'must be a table with type = "sqlite" (or another of: {types})')
    kind = body.get("type")
    if kind is None:
        raise fail(where, f"'type' is missing; add type = \"sqlite\" (or another of: {types})")
    if not isinstance(kind, str):
        raise fail(where, f"'type' must be a string, one of: {types}")
    backend = backend_for_type(kind)
    if backend is None:
        problem = f"unknown store type {kind!r}"
        if kind in _SPIN_TYPES:
            problem = f"store type {kind!r} ({_SPIN_TYPES[kind]}) is not supported by wasikv"
        elif close := difflib.get_close_matches(kind, kinds, n=1):
            problem += f" (did you mean {close[0]!r}?)"
        raise fail(where, f"{problem}; use one of: {types}")
    allowed = ("type", *backend.config_keys)
    for key in body:
        if key not in allowed:
            raise fail(
                where,
                f"unknown key {key!r} for a {kind!r} store; allowed keys: {', '.join(allowed)}",
            )
    try:
        return backend.config_url(label, body, base, manifest_dir / STATE_DIR)
    except ValueError as exc:
        raise fail(where, str(exc)) from None
