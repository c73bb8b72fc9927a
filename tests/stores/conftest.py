"""A `store` fixture that runs each contract test against every backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from wasikv.stores import MemoryStore, SqliteStore, Store

StoreFactory = Callable[..., Store]


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Open stores of one backend; keyword arguments go to the constructor."""
    opened: list[Store] = []

    def make(**kwargs: Any) -> Store:
        store: Store
        if request.param == "memory":
            store = MemoryStore(**kwargs)
        else:
            store = SqliteStore(tmp_path / f"store{len(opened)}.db", **kwargs)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: StoreFactory) -> Store:
    """A fresh, empty store of each backend."""
    return make_store()
