"""Store backends and the URLs that select them."""

from __future__ import annotations

from urllib.parse import unquote

from ..errors import InvalidStoreUrl
from ._url import parse_query
from .base import Store, Versioned
from .memory import MemoryStore
from .sqlite import SqliteStore

__all__ = ["MemoryStore", "SqliteStore", "Store", "Versioned", "open_store"]

_ACCEPTED = (
    "accepted forms: 'memory:', 'memory:NAME', 'sqlite:PATH' (relative to the working directory), "
    "'sqlite:///ABSOLUTE/PATH', optionally followed by '?busy_timeout=MS&synchronous=normal|full', "
    "'redis://[USER:PASSWORD@]HOST[:PORT][/DB]' and 'rediss://…' (TLS), optionally followed by "
    "'?prefix=P&socket_timeout=S&connect_timeout=S&max_connections=N'"
)


def open_store(url: str, *, label: str | None = None) -> Store:
    """Open the store a URL names.

    `memory:` and `memory:NAME` give a fresh in-memory store (callers that want
    components to share one cache stores by URL). `sqlite:PATH` and
    `sqlite:///ABSOLUTE/PATH` open a SQLite file; the path is percent-decoded
    and may be followed by `?busy_timeout=MS&synchronous=normal|full`.
    `redis://` and `rediss://` URLs open a `RedisStore` (needs the
    `wasikv[redis]` extra) whose keys live under `?prefix=`, by default
    `wasikv:{label}:` (`wasikv:default:` without a label); only Redis uses
    `label`. Raises `InvalidStoreUrl` for anything else.
    """
    scheme, colon, rest = url.partition(":")
    scheme = scheme.lower()
    if not colon:
        raise InvalidStoreUrl(f"store URL {url!r} has no scheme; {_ACCEPTED}")
    if scheme == "memory":
        return MemoryStore(url)
    if scheme == "sqlite":
        return _open_sqlite(url, rest)
    if scheme in ("redis", "rediss"):
        return _open_redis(url, label)
    raise InvalidStoreUrl(f"store URL {url!r} has an unknown scheme {scheme!r}; {_ACCEPTED}")


def _open_redis(url: str, label: str | None) -> Store:
    # Imported here so that wasikv works without redis-py installed.
    try:
        from .redis import RedisStore
    except ImportError as exc:
        if exc.name != "redis":
            raise
        raise InvalidStoreUrl(
            f"store URL {url!r}: redis stores need the redis package; install wasikv[redis]"
        ) from None
    return RedisStore.from_url(url, label=label)


def _open_sqlite(url: str, rest: str) -> SqliteStore:
    raw_path, _, query = rest.partition("?")
    if raw_path.startswith("//"):
        authority, slash, raw_path = raw_path[2:].partition("/")
        if authority or not slash:
            raise InvalidStoreUrl(
                f"store URL {url!r}: a sqlite URL with '//' needs an absolute path "
                f"(sqlite:///path/to/file.db); {_ACCEPTED}"
            )
        raw_path = "/" + raw_path
    try:
        path = unquote(raw_path, errors="strict")
    except UnicodeDecodeError:
        raise InvalidStoreUrl(f"store URL {url!r}: the path is not valid percent-encoded UTF-8") from None
    if path in ("", "/") or path.endswith("/"):
        raise InvalidStoreUrl(f"store URL {url!r} names no database file; {_ACCEPTED}")
    if path == ":memory:":
        raise InvalidStoreUrl(f"store URL {url!r}: use 'memory:' for an in-memory store")
    options = parse_query(url, query, ("busy_timeout", "synchronous"))
    timeout_text = options.get("busy_timeout", "5000")
    if not (timeout_text.isascii() and timeout_text.isdigit() and int(timeout_text) < 2**31):
        raise InvalidStoreUrl(
            f"store URL {url!r}: busy_timeout must be a whole number of milliseconds "
            f"below 2**31, not {timeout_text!r}"
        )
    synchronous = options.get("synchronous", "normal").lower()
    if synchronous not in ("normal", "full"):
        raise InvalidStoreUrl(
            f"store URL {url!r}: synchronous must be 'normal' or 'full', not {options['synchronous']!r}"
        )
    return SqliteStore(path, url=url, busy_timeout_ms=int(timeout_text), synchronous=synchronous)
