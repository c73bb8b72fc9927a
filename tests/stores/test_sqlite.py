"""SQLite-only behaviour: files, processes, crashes, locks and errors."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from wasikv.errors import StoreError
from wasikv.stores import SqliteStore

# Child processes import the store the same way host code does.
_CHILD_PREAMBLE = """
import os, sys, time
from wasikv.stores import SqliteStore
"""

_CONTENDER = (
    _CHILD_PREAMBLE
    + """
path, mode, count, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
store = SqliteStore(path, busy_timeout_ms=60_000)
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.002)
for _ in range(count):
    if mode == "increment":
        store.increment("n", 1)
        continue
    while True:
        current = store.get_versioned("n")
        number = int(current.value) if current.value is not None else 0
        if store.swap("n", current.version, str(number + 1).encode()):
            break
store.close()
"""
)

_WRITER = (
    _CHILD_PREAMBLE
    + """
store = SqliteStore(sys.argv[1])
i = 0
while True:
    store.set(f"k{i}", str(i).encode() * 100)
    print(i, flush=True)
    i += 1
"""
)

_OPENER = (
    _CHILD_PREAMBLE
    + """
import glob
directory, processes, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for n in range(count):
    # A barrier of files: every child opens database n at the same moment.
    open(os.path.join(directory, f"at-{n}-{os.getpid()}"), "w").close()
    while len(glob.glob(os.path.join(directory, f"at-{n}-*"))) < processes:
        time.sleep(0.001)
    store = SqliteStore(os.path.join(directory, f"{n}.db"))
    store.increment("opened", 1)
    store.close()
"""
)


def run_contenders(path: Path, tmp_path: Path, mode: str, processes: int, count: int) -> None:
    """Run `processes` children doing `count` increments or CAS loops at the same moment."""
    go = tmp_path / f"go-{mode}"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CONTENDER, str(path), mode, str(count), str(go)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        go.touch()
        for child in children:
            assert child.wait(timeout=60) == 0
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
            if child.stdout is not None:
                child.stdout.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "sub" / "dir" / "kv.db"


def test_creates_parent_directories_and_uses_wal(db_path: Path) -> None:
    store = SqliteStore(db_path)
    store.set("k", b"v")
    store.close()
    assert db_path.is_file()
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    conn.close()


def test_attributes(db_path: Path) -> None:
    store = SqliteStore(str(db_path), busy_timeout_ms=250, synchronous="FULL")
    assert store.path == str(db_path)
    assert store.url == f"sqlite:{db_path}"
    assert store.busy_timeout_ms == 250
    assert store.synchronous == "full"
    store.close()


def test_persists_across_reopen(db_path: Path) -> None:
    store = SqliteStore(db_path)
    store.set("a", b"1")
    store.set("gone", b"x")
    store.delete("gone")
    store.increment("n", 41)
    pinned = store.get_versioned("a")
    store.close()

    store = SqliteStore(db_path)
    assert store.get("a") == b"1"
    assert store.get("gone") is None
    assert store.increment("n", 1) == 42
    assert store.list_keys(None, 10) == ["a", "n"]
    # Versions survive the reopen: the old pin still matches, and new writes move on.
    assert store.get_versioned("a") == pinned
    store.set("a", b"1")
    assert not store.swap("a", pinned.version, b"2")
    store.close()


def test_two_stores_on_one_file_see_each_other(db_path: Path) -> None:
    first, second = SqliteStore(db_path), SqliteStore(db_path)
    first.set("k", b"1")
    assert second.get("k") == b"1"
    pinned = second.get_versioned("k")
    first.set("k", b"1")
    assert not second.swap("k", pinned.version, b"2")
    first.close()
    second.close()


def test_tombstones_stay_bounded(db_path: Path) -> None:
    store = SqliteStore(db_path, tombstone_window=50)
    for i in range(1000):
        store.set(f"k{i}", b"v")
        store.delete(f"k{i}")
    store.close()
    with sqlite3.connect(db_path) as conn:
        (tombstones,) = conn.execute("SELECT count(*) FROM kv WHERE value IS NULL").fetchone()
    conn.close()
    # Swept every 50 deletes: at most the window plus one sweep interval of writes remains.
    assert 0 < tombstones <= 100


def test_batch_rolls_back_when_sqlite_fails_mid_batch(db_path: Path) -> None:
    store = SqliteStore(db_path)
    store.set("a", b"old")
    # A lone surrogate cannot be encoded as UTF-8: binding fails after "a" and "b" were written.
    with pytest.raises(StoreError, match=str(db_path)):
        store.set_many([("a", b"new"), ("b", b"1"), ("bad\ud800", b"2"), ("c", b"3")])
    assert store.get_many(["a", "b", "c"]) == [b"old", None, None]
    pinned = store.get_versioned("a")
    with pytest.raises(StoreError):
        store.delete_many(["a", "bad\ud800"])
    assert store.get_versioned("a") == pinned
    # The connection is usable again after the rollback.
    store.set_many([("b", b"1")])
    assert store.get("b") == b"1"
    store.close()


def test_unencodable_key_is_a_store_error(db_path: Path) -> None:
    store = SqliteStore(db_path)
    with pytest.raises(StoreError):
        store.set("\udcff", b"v")
    with pytest.raises(StoreError):
        store.get("\udcff")
    store.close()


def test_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not a database, just some bytes\n" * 200)
    with pytest.raises(StoreError, match="not a database") as caught:
        SqliteStore(path)
    assert str(path) in str(caught.value)


def test_foreign_database_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    conn.close()
    with pytest.raises(StoreError, match="not a wasikv store"):
        SqliteStore(path)


def test_newer_schema_refused(db_path: Path) -> None:
    SqliteStore(db_path).close()
    with sqlite3.connect(db_path) as conn:
        conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreError, match="schema version 99"):
        SqliteStore(db_path)


def test_path_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is a directory") as caught:
        SqliteStore(tmp_path)
    assert str(tmp_path) in str(caught.value)


def test_parent_is_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(StoreError, match="cannot create directory") as caught:
        SqliteStore(blocker / "kv.db")
    assert str(blocker / "kv.db") in str(caught.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_directory(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(StoreError, match=str(locked)):
            SqliteStore(locked / "kv.db")
    finally:
        locked.chmod(0o700)


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        SqliteStore(":memory:")
    with pytest.raises(ValueError):
        SqliteStore(tmp_path / "x.db", synchronous="off")
    with pytest.raises(ValueError):
        SqliteStore(tmp_path / "x.db", busy_timeout_ms=-1)


def test_locked_database(db_path: Path) -> None:
    store = SqliteStore(db_path, busy_timeout_ms=50)
    store.set("k", b"before")
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        for write in (
            lambda: store.set("k", b"during"),
            lambda: store.increment("n", 1),
            lambda: store.set_many([("a", b"1")]),
        ):
            with pytest.raises(StoreError, match="locked") as caught:
                write()
            assert str(db_path) in str(caught.value)
        # WAL readers are not blocked by a writer.
        assert store.get("k") == b"before"
    finally:
        other.execute("ROLLBACK")
        other.close()
    store.set("k", b"after")
    assert store.get("k") == b"after"
    assert store.increment("n", 1) == 1
    store.close()


def test_connection_per_thread_closed_by_close(db_path: Path) -> None:
    store = SqliteStore(db_path)
    results: list[bytes | None] = []

    def worker() -> None:
        store.set("t", b"from thread")
        results.append(store.get("t"))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert results == [b"from thread"]
    store.close()
    with pytest.raises(StoreError, match=str(db_path)):
        store.get("t")
    with pytest.raises(StoreError, match="closed"):
        store.set("t", b"again")
    # A thread that never used the store cannot open a new connection either.
    failures: list[BaseException] = []

    def late() -> None:
        try:
            store.get("t")
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=late)
    thread.start()
    thread.join()
    assert len(failures) == 1 and isinstance(failures[0], StoreError)


@pytest.mark.slow
def test_processes_increment(db_path: Path, tmp_path: Path) -> None:
    SqliteStore(db_path).close()
    run_contenders(db_path, tmp_path, "increment", processes=4, count=250)
    store = SqliteStore(db_path)
    assert store.get("n") == b"1000"
    store.close()


@pytest.mark.slow
def test_processes_cas_loops(db_path: Path, tmp_path: Path) -> None:
    SqliteStore(db_path).close()
    run_contenders(db_path, tmp_path, "cas", processes=4, count=250)
    store = SqliteStore(db_path)
    assert store.get("n") == b"1000"
    store.close()


def test_processes_opening_one_new_database_at_once_all_succeed(tmp_path: Path) -> None:
    # Before the WAL switch waited out busy_timeout, about one round in six
    # failed with "database is locked".
    processes, count = 6, 30
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _OPENER, str(tmp_path), str(processes), str(count)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        # A child that fails leaves the others waiting at its barrier: stop at the first.
        deadline = time.monotonic() + 120
        while any(child.poll() is None for child in children) and time.monotonic() < deadline:
            for child in children:
                if child.poll() not in (None, 0):
                    assert child.stderr is not None
                    pytest.fail(child.stderr.read())
            time.sleep(0.01)
        assert [child.poll() for child in children] == [0] * processes
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
            child.communicate()
    for n in range(count):
        store = SqliteStore(tmp_path / f"{n}.db")
        assert store.get("opened") == str(processes).encode()
        store.close()


@pytest.mark.slow
def test_acknowledged_writes_survive_kill_9(db_path: Path) -> None:
    SqliteStore(db_path).close()
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(db_path)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None
    acknowledged: list[int] = []
    try:
        while len(acknowledged) < 500:
            line = writer.stdout.readline()
            assert line, "writer exited early"
            acknowledged.append(int(line))
        writer.send_signal(signal.SIGKILL)
        assert writer.wait(timeout=30) == -signal.SIGKILL
        # Lines still in the pipe were printed after their commit too.
        acknowledged.extend(int(line) for line in writer.stdout.read().split())
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
        writer.stdout.close()
    store = SqliteStore(db_path)
    values = store.get_many([f"k{i}" for i in acknowledged])
    assert values == [str(i).encode() * 100 for i in acknowledged]
    store.close()


_CLOSE_UNDER_LOAD = """
import sys, threading, time
from wasikv import SqliteStore, StoreError
store = SqliteStore(sys.argv[1])
outcomes = []
def hammer(n):
    try:
        while True:
            store.set(f"k{n}", b"v" * 100)
            store.get(f"k{n}")
            store.changes(0, 10)
    except StoreError as exc:
        outcomes.append(str(exc))
threads = [threading.Thread(target=hammer, args=(n,)) for n in range(4)]
for t in threads:
    t.start()
time.sleep(0.2)
store.close()
for t in threads:
    t.join(10)
print(len(outcomes), outcomes[0])
"""


def test_closing_a_store_other_threads_are_using_never_crashes(tmp_path: Path) -> None:
    # close() used to close connections under running statements: a segfault
    # now and then. It now waits for each statement and the threads get
    # StoreError.
    for attempt in range(5):
        done = subprocess.run(
            [sys.executable, "-c", _CLOSE_UNDER_LOAD, str(tmp_path / f"kv{attempt}.db")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("4 sqlite store ") and "closed" in done.stdout
