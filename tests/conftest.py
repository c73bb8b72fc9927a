"""Shared fixtures: a guest builder and hosts whose stores live in the test's tmp dir."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from wasikv import Host, Limits

from . import postgres_support as pg
from .redis_support import REDIS_HOST, REDIS_PORT, TEST_DB, delete_prefix, require_redis, unique_prefix
from .support import COMPILE_CACHE, guest_wasm


@pytest.fixture(scope="session")
def build_guest() -> Callable[[str], Path]:
    """Build (or reuse) a guest component by directory name."""
    return guest_wasm


@pytest.fixture(params=["memory", "sqlite", "redis", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of each kind of store, private to the test (Redis: a unique prefix, deleted after;
    PostgreSQL: a unique schema, dropped after)."""
    if request.param == "memory":
        yield "memory:"
    elif request.param == "sqlite":
        yield f"sqlite:{tmp_path / 'kv.db'}"
    elif request.param == "postgres":
        pg.require_postgres()
        schema = pg.unique_schema()
        yield pg.postgres_url(schema)
        pg.drop_schema(schema)
    else:
        require_redis()
        prefix = unique_prefix()
        yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{TEST_DB}?prefix={prefix}"
        delete_prefix(prefix)


@pytest.fixture
def make_host(tmp_path: Path) -> Iterator[Callable[..., Host]]:
    """A factory of hosts whose stores live in this test's temporary directory."""
    hosts: list[Host] = []

    def make(stores: Mapping[str, str] | None = None, limits: Limits | None = None) -> Host:
        host = Host(
            stores if stores is not None else {"default": f"sqlite:{tmp_path / 'default.db'}"},
            limits=limits,
            cache_dir=COMPILE_CACHE,
        )
        hosts.append(host)
        return host

    yield make
    for host in hosts:
        host.close()
