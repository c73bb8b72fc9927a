"""A `store` fixture that runs each contract test against every backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from wasikv.stores import MemoryStore, SqliteStore, Store

from .. import postgres_support as pg
from ..backends import BACKEND_NAMES
from ..redis_support import REDIS_HOST, REDIS_PORT, TEST_DB, delete_prefix, require_redis, unique_prefix

StoreFactory = Callable[..., Store]


@pytest.fixture(params=BACKEND_NAMES)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Open stores of one backend; keyword arguments go to the constructor.

    Redis stores use the shared server (database 15), each under a prefix of
    its own that is deleted afterwards; PostgreSQL stores the shared server
    (database test), each in a schema of its own that is dropped afterwards.
    """
    if request.param == "redis":
        require_redis()
    if request.param == "postgres":
        pg.require_postgres()
    opened: list[Store] = []
    prefixes: list[str] = []
    schemas: list[str] = []

    def make(**kwargs: Any) -> Store:
        store: Store
        if request.param == "memory":
            store = MemoryStore(**kwargs)
        elif request.param == "sqlite":
            store = SqliteStore(tmp_path / f"store{len(opened)}.db", **kwargs)
        elif request.param == "postgres":
            from wasikv.stores.postgres import PostgresStore

            schemas.append(pg.unique_schema())
            store = PostgresStore(
                pg.PG_HOST, pg.PG_PORT, pg.TEST_DB, user=pg.PG_USER, schema=schemas[-1], **kwargs
            )
        elif request.param == "redis":
            from wasikv.stores.redis import RedisStore

            prefixes.append(unique_prefix())
            store = RedisStore(REDIS_HOST, REDIS_PORT, TEST_DB, prefix=prefixes[-1], **kwargs)
        else:
            raise AssertionError(f"tests/stores/conftest.py cannot construct a {request.param!r} store yet")
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()
    for prefix in prefixes:
        delete_prefix(prefix)
    for schema in schemas:
        pg.drop_schema(schema)


@pytest.fixture
def store(make_store: StoreFactory) -> Store:
    """A fresh, empty store of each backend."""
    return make_store()
