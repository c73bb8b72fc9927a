"""Parsing store URLs with `open_store`."""

from __future__ import annotations

from pathlib import Path

import pytest

from wasikv.errors import InvalidStoreUrl
from wasikv.stores import MemoryStore, SqliteStore, open_store


@pytest.mark.parametrize("url", ["memory:", "memory:cache", "MEMORY:x"])
def test_memory(url: str) -> None:
    store = open_store(url)
    assert isinstance(store, MemoryStore)
    assert store.url == url


def test_memory_urls_are_not_shared_here() -> None:
    first, second = open_store("memory:shared"), open_store("memory:shared")
    first.set("k", b"v")
    assert second.get("k") is None


def test_sqlite_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("sqlite:data/kv.db")
    assert isinstance(store, SqliteStore)
    assert store.path == str(tmp_path / "data" / "kv.db")
    assert store.url == "sqlite:data/kv.db"
    store.set("k", b"v")
    store.close()
    assert (tmp_path / "data" / "kv.db").is_file()


@pytest.mark.parametrize("form", ["sqlite:{path}", "sqlite://{path}", "SQLite:{path}"])
def test_sqlite_absolute_path(tmp_path: Path, form: str) -> None:
    path = tmp_path / "kv.db"
    store = open_store(form.format(path=path))
    assert isinstance(store, SqliteStore)
    assert store.path == str(path)
    assert store.busy_timeout_ms == 5000
    assert store.synchronous == "normal"
    store.close()


def test_sqlite_percent_decoding(tmp_path: Path) -> None:
    store = open_store(f"sqlite://{tmp_path}/a%20b%3Fc.db")
    assert isinstance(store, SqliteStore)
    assert store.path == str(tmp_path / "a b?c.db")
    store.close()


def test_sqlite_options(tmp_path: Path) -> None:
    store = open_store(f"sqlite://{tmp_path}/kv.db?busy_timeout=250&synchronous=FULL")
    assert isinstance(store, SqliteStore)
    assert store.busy_timeout_ms == 250
    assert store.synchronous == "full"
    store.close()
    store = open_store(f"sqlite:{tmp_path}/kv.db?synchronous=normal")
    assert isinstance(store, SqliteStore)
    assert store.synchronous == "normal"
    store.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "no scheme"),
        ("kv.db", "no scheme"),
        ("mysql://db/kv", "unknown scheme 'mysql'.*accepted forms"),
        ("file:/tmp/kv.db", "unknown scheme 'file'"),
        ("sqlite:", "names no database file"),
        ("sqlite://", "needs an absolute path"),
        ("sqlite:///", "names no database file"),
        ("sqlite://host/kv.db", "needs an absolute path"),
        ("sqlite:/tmp/dir/", "names no database file"),
        ("sqlite:?busy_timeout=5", "names no database file"),
        ("sqlite::memory:", "use 'memory:'"),
        ("sqlite:/tmp/kv.db?journal=wal", "unknown parameter 'journal'"),
        ("sqlite:/tmp/kv.db?busy_timeout=abc", "busy_timeout"),
        ("sqlite:/tmp/kv.db?busy_timeout=-1", "busy_timeout"),
        ("sqlite:/tmp/kv.db?busy_timeout=1.5", "busy_timeout"),
        ("sqlite:/tmp/kv.db?busy_timeout=99999999999", "busy_timeout"),
        ("sqlite:/tmp/kv.db?busy_timeout=", "needs a value"),
        ("sqlite:/tmp/kv.db?synchronous", "needs a value"),
        ("sqlite:/tmp/kv.db?synchronous=off", "synchronous must be"),
        ("sqlite:/tmp/kv.db?synchronous=full&synchronous=full", "given twice"),
        ("sqlite:/tmp/%ff.db", "percent-encoded"),
    ],
)
def test_invalid_urls(url: str, message: str) -> None:
    with pytest.raises(InvalidStoreUrl, match=message) as caught:
        open_store(url)
    assert repr(url) in str(caught.value)
