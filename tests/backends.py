"""Every store backend, for the tests: their names (from wasikv's registry) and private URLs.

Fixtures that run a test on each backend take their parameters from
`BACKEND_NAMES`, so a backend added to `wasikv.stores.registry` is tested
everywhere at once. Services (Redis, PostgreSQL) are the machine's real
servers: each test gets a keyspace of its own (a Redis prefix, a PostgreSQL
schema), removed afterwards; without the server the test skips, or fails
under CI=true.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from wasikv.stores.registry import BACKENDS

from . import postgres_support as pg
from .redis_support import REDIS_HOST, REDIS_PORT, TEST_DB, delete_prefix, require_redis, unique_prefix

#: Every backend the registry knows, in its order.
BACKEND_NAMES = tuple(backend.name for backend in BACKENDS)


@contextmanager
def private_store_url(name: str, directory: Path, file: str = "kv.db") -> Iterator[str]:
    """A URL of backend `name` that no other test uses, cleaned up afterwards."""
    if name == "memory":
        yield "memory:"
    elif name == "sqlite":
        yield f"sqlite:{directory / file}"
    elif name == "redis":
        require_redis()
        prefix = unique_prefix()
        try:
            yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{TEST_DB}?prefix={prefix}"
        finally:
            delete_prefix(prefix)
    elif name == "postgres":
        pg.require_postgres()
        schema = pg.unique_schema()
        try:
            yield pg.postgres_url(schema)
        finally:
            pg.drop_schema(schema)
    else:
        raise AssertionError(f"tests/backends.py does not know how to give backend {name!r} a private URL")


__all__ = ["BACKEND_NAMES", "private_store_url"]
