"""The change feed of every store: contents, order, paging, pruning, transactions, wake-ups."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from wasikv.errors import StoreError
from wasikv.stores import MemoryStore, SqliteStore, Store
from wasikv.stores.base import Change, Versioned

from .. import postgres_support as pg
from ..redis_support import REDIS_HOST, REDIS_PORT, TEST_DB, delete_prefix, require_redis, unique_prefix
from .conftest import StoreFactory


@pytest.fixture
def make_store(make_store: StoreFactory) -> StoreFactory:
    """The contract suite's stores, with the feed started (Redis records changes once watched)."""

    def make(**kwargs: Any) -> Store:
        store = make_store(**kwargs)
        store.last_change()
        return store

    return make


class Feed:
    """A store's feed with sequence numbers counted from the store's start.

    Redis starts its sequence at its clock in microseconds; memory and SQLite
    at 0. Counting from there lets one expectation fit every backend.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.base = store.last_change()

    def changes(self, after: int = 0, limit: int = 1000) -> list[Change]:
        found = self.store.changes(self.base + after, limit)
        return [Change(c.seq - self.base, c.key, c.value) for c in found]

    def last(self) -> int:
        return self.store.last_change() - self.base


@pytest.fixture
def store(make_store: StoreFactory) -> Store:
    return make_store()


@pytest.fixture
def feed(store: Store) -> Feed:
    return Feed(store)


def test_an_empty_feed(feed: Feed) -> None:
    assert feed.last() == 0
    assert feed.changes() == []


def test_every_kind_of_write_is_recorded_in_order(store: Store, feed: Feed) -> None:
    store.set("a", b"1")
    store.set("b", b"2")
    store.set("a", b"3")
    store.delete("b")
    store.delete("never-existed")
    assert store.increment("n", 5) == 5
    version = store.get_versioned("a").version
    assert store.swap("a", version, b"swapped")
    assert not store.swap("a", version, b"lost")  # a failed swap writes nothing
    store.set_many([("x", b"x1"), ("y", b""), ("x", b"x2")])
    store.delete_many(["x", "y"])
    assert feed.changes() == [
        Change(1, "a", b"1"),
        Change(2, "b", b"2"),
        Change(3, "a", b"3"),
        Change(4, "b", None),
        Change(5, "never-existed", None),
        Change(6, "n", b"5"),
        Change(7, "a", b"swapped"),
        Change(8, "x", b"x1"),
        Change(9, "y", b""),
        Change(10, "x", b"x2"),
        Change(11, "x", None),
        Change(12, "y", None),
    ]
    assert feed.last() == 12


def test_a_change_carries_the_version_the_write_gave_the_key(store: Store) -> None:
    store.set("k", b"v")
    store.set_many([("p", b"1"), ("q", b"2")])
    store.increment("n", 1)
    found = store.changes(0, 10)
    assert len(found) == 4
    for change in found:
        assert store.get_versioned(change.key) == Versioned(change.value, change.seq)


def test_paging_with_after_and_limit(store: Store, feed: Feed) -> None:
    for i in range(25):
        store.set(f"k{i % 4}", str(i).encode())
    seen: list[Change] = []
    cursor = 0
    while page := feed.changes(cursor, 7):
        assert len(page) <= 7
        seen += page
        cursor = page[-1].seq
    assert [c.seq for c in seen] == list(range(1, 26))
    assert [c.value for c in seen] == [str(i).encode() for i in range(25)]
    assert feed.changes(25, 10) == []
    assert feed.changes(1000, 10) == []
    assert feed.changes(0, 0) == []
    assert feed.changes(0, -1) == []
    assert feed.changes(20, 2) == [Change(21, "k0", b"20"), Change(22, "k1", b"21")]


def test_failed_writes_leave_no_change(store: Store, feed: Feed) -> None:
    store.set("text", b"not a number")
    with pytest.raises(StoreError):
        store.increment("text", 1)
    store.increment("big", 2**63 - 1)
    with pytest.raises(StoreError):
        store.increment("big", 1)
    assert feed.changes() == [Change(1, "text", b"not a number"), Change(2, "big", b"9223372036854775807")]
    assert feed.last() == 2
    store.set("after", b"x")
    # Numbers stay consecutive after a failure.
    assert feed.changes(2) == [Change(3, "after", b"x")]


@pytest.mark.parametrize("window", [1, 10])
def test_pruning_keeps_the_newest_window(make_store: StoreFactory, window: int) -> None:
    store = make_store(change_window=window)
    feed = Feed(store)
    store.set_many([(f"k{i}", b"v") for i in range(500)])
    for i in range(2500):
        store.set(f"k{i % 7}", str(i).encode())
    assert feed.last() == 3000
    held = feed.changes(0, 10_000)
    # At least the window is kept, the newest last, with consecutive numbers.
    assert len(held) >= window
    assert held[-1] == Change(3000, "k0", b"2499")
    assert [c.seq for c in held] == list(range(held[0].seq, 3001))
    # Older ones are gone: a reader at 0 sees the feed start after its cursor.
    assert held[0].seq > 1


def test_a_change_window_must_be_positive(make_store: StoreFactory) -> None:
    with pytest.raises(ValueError, match="change_window"):
        make_store(change_window=0)


def test_wait_for_change(make_store: StoreFactory) -> None:
    """Notifying stores wake up as soon as another client writes; the others poll."""
    store = make_store()
    last = store.last_change()
    if not store.change_notifications:
        assert store.wait_for_change(last, 5.0) is False
        return
    other = store
    if type(store).__name__ == "PostgresStore":
        from wasikv.stores.postgres import PostgresStore

        assert isinstance(store, PostgresStore)
        other = PostgresStore(
            pg.PG_HOST, pg.PG_PORT, pg.TEST_DB, user=pg.PG_USER, schema=store.schema, table_prefix=store.table
        )
    elif not isinstance(store, MemoryStore):
        from wasikv.stores.redis import RedisStore

        assert isinstance(store, RedisStore)
        other = RedisStore(REDIS_HOST, REDIS_PORT, TEST_DB, prefix=store.prefix)
    assert not store.wait_for_change(last, 0.01)
    writer = threading.Timer(0.05, other.set, ("k", b"v"))
    started = time.monotonic()
    writer.start()
    try:
        assert store.wait_for_change(last, 10.0)
    finally:
        writer.join()
        if other is not store:
            other.close()
    assert time.monotonic() - started < 5.0
    # Already past the cursor: no waiting at all.
    assert store.wait_for_change(last, 0)


def test_redis_records_changes_only_once_someone_follows_the_feed() -> None:
    require_redis()
    from wasikv.stores.redis import RedisStore

    from ..redis_support import raw_client

    prefix = unique_prefix()
    store = RedisStore(REDIS_HOST, REDIS_PORT, TEST_DB, prefix=prefix)
    raw = raw_client()
    stream = prefix.encode() + b"|changes"
    try:
        store.set("unwatched", b"1")
        assert raw.exists(stream) == 0  # nobody asked: no memory spent on a feed
        start = store.last_change()
        assert raw.exists(stream) == 1
        store.set("watched", b"2")
        assert store.changes(start, 10) == [Change(start + 1, "watched", b"2")]
        # Redis loses the stream (a flush, a restart without persistence)...
        raw.delete(stream)
        store.set("lost", b"3")
        # ...the next read starts it again, and a reader sees what it missed.
        assert store.changes(start + 1, 10) == []
        store.set("after", b"4")
        assert store.changes(start + 1, 10) == [Change(start + 3, "after", b"4")]
    finally:
        store.close()
        raw.close()
        delete_prefix(prefix)


def test_memory_feed_is_bounded_by_bytes_too() -> None:
    store = MemoryStore(change_bytes=10_000)
    for i in range(100):
        store.set("big", bytes([i]) * 1000)
    feed = store.changes(0, 1000)
    assert sum(len(c.value or b"") for c in feed) <= 10_000
    assert feed[-1].seq == 100 and [c.seq for c in feed] == list(range(feed[0].seq, 101))
    # The newest change is kept even when it alone is over the budget.
    store.set("huge", b"x" * 50_000)
    assert store.changes(0, 1000) == [Change(101, "huge", b"x" * 50_000)]


def test_memory_feed_reads_from_either_end() -> None:
    store = MemoryStore(change_window=1000)
    for i in range(2500):
        store.set("k", str(i).encode())
    assert [c.seq for c in store.changes(1500, 3)] == [1501, 1502, 1503]  # oldest end
    assert [c.seq for c in store.changes(2497, 10)] == [2498, 2499, 2500]  # newest end
    assert [c.seq for c in store.changes(2000, 3)] == [2001, 2002, 2003]


def test_sqlite_feed_is_shared_by_every_connection(tmp_path: Path) -> None:
    writer = SqliteStore(tmp_path / "shared.db")
    reader = SqliteStore(tmp_path / "shared.db")
    writer.set("from-writer", b"1")
    reader.set("from-reader", b"2")
    assert (
        reader.changes(0, 10)
        == writer.changes(0, 10)
        == [
            Change(1, "from-writer", b"1"),
            Change(2, "from-reader", b"2"),
        ]
    )
    writer.close()
    reader.close()


def test_sqlite_change_is_in_the_write_transaction(tmp_path: Path) -> None:
    """A write that fails after its change row was inserted leaves no change behind."""
    path = tmp_path / "tx.db"
    store = SqliteStore(path)
    store.set("before", b"1")
    # Make the kv upsert (which runs after the change insert) fail for one key.
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON kv WHEN new.key = 'boom' "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    conn.close()
    with pytest.raises(StoreError, match="refused"):
        store.set("boom", b"x")
    with pytest.raises(StoreError, match="refused"):
        store.set_many([("fine", b"1"), ("boom", b"2")])
    assert store.get("fine") is None
    assert store.changes(0, 10) == [Change(1, "before", b"1")]
    assert store.last_change() == 1
    store.set("after", b"2")
    assert store.changes(1, 10) == [Change(2, "after", b"2")]
    store.close()


def test_sqlite_sweeps_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "sweep.db"
    big = SqliteStore(path, change_window=100_000)
    big.set_many([(f"k{i}", b"v") for i in range(500)])
    big.close()
    small = SqliteStore(path, change_window=50)
    feed = small.changes(0, 1000)
    assert len(feed) == 50 and feed[0].seq == 451
    small.close()


def test_sqlite_store_from_before_the_feed_continues_its_numbers(tmp_path: Path) -> None:
    """A store written by a wasikv without the feed: versions go on from its sequence."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(
            """
            PRAGMA journal_mode = WAL;
            CREATE TABLE kv (key TEXT PRIMARY KEY NOT NULL, value BLOB, version INTEGER NOT NULL)
                WITHOUT ROWID;
            CREATE INDEX kv_tombstones ON kv (version) WHERE value IS NULL;
            CREATE TABLE meta (id INTEGER PRIMARY KEY CHECK (id = 0), seq INTEGER NOT NULL,
                watermark INTEGER NOT NULL);
            INSERT INTO meta VALUES (0, 7, 0);
            INSERT INTO kv VALUES ('old', x'6f6c64', 7);
            PRAGMA user_version = 1;
            """
        )
    conn.close()
    store = SqliteStore(path)
    assert store.last_change() == 7
    assert store.changes(0, 10) == []
    old = store.get_versioned("old")
    store.set("new", b"n")
    assert store.changes(0, 10) == [Change(8, "new", b"n")]
    assert store.swap("old", old.version, b"swapped")
    assert store.get_versioned("old").version == 9
    store.close()


class _NoFeed(Store):
    """The smallest store: everything a feed-less backend has."""

    url = "nofeed:"

    def get(self, key: str) -> bytes | None:
        return None

    def get_versioned(self, key: str) -> Versioned:
        return Versioned(None, 0)

    def set(self, key: str, value: bytes) -> None:
        pass

    def delete(self, key: str) -> None:
        pass

    def exists(self, key: str) -> bool:
        return False

    def list_keys(self, after: str | None, limit: int) -> list[str]:
        return []

    def increment(self, key: str, delta: int) -> int:
        return delta

    def swap(self, key: str, version: int, value: bytes) -> bool:
        return False

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return [None for _ in keys]

    def set_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        pass

    def delete_many(self, keys: Sequence[str]) -> None:
        pass


def test_stores_without_a_feed_say_so() -> None:
    store = _NoFeed()
    with pytest.raises(StoreError, match="does not support change feeds"):
        store.changes(0, 10)
    with pytest.raises(StoreError, match="does not support change feeds"):
        store.last_change()
    assert not store.change_notifications
    assert store.wait_for_change(0, 1.0) is False
