"""Watch positions kept in the watched store: nothing an operator does to `.wasikv/` skips changes.

Real watcher components (tests/guests/suite/watch_probe.py) on SQLite files, through
`WatchTriggers.from_app` as `wasikv up` runs them; old cursor files from
before positions moved into the store are migrated once, or refused at
start-up, promptly, when unusable.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from wasikv import ConfigError, Host, MemoryStore, SqliteStore
from wasikv.app.loader import load_app
from wasikv.triggers.watch import (
    RetryPolicy,
    WatcherComponent,
    WatchRunner,
    WatchTriggers,
    cursor_path,
    position_name,
)

from .support import COMPILE_CACHE, suite_wasm

APP = "positions-app"
MANIFEST = f"""\
spin_manifest_version = 2

[application]
name = "{APP}"

[[trigger.key-value]]
store = "default"
component = "probe"

[component.probe]
source = "probe.wasm"
key_value_stores = ["default", "seen"]
"""
# The stores live outside .wasikv/, so that deleting it loses no data.
RUNTIME_CONFIG = """\
[key_value_store.default]
type = "sqlite"
path = "data/kv.db"

[key_value_store.seen]
type = "sqlite"
path = "data/seen.db"
"""
POSITION = position_name(APP, "probe", "")
FAST_RETRY = RetryPolicy((0.01,))
TIMEOUT = 60.0
# Start-up with a bad old cursor file fails within this (the component is compiled already).
PROMPT = 20.0


@pytest.fixture(scope="session")
def probe_wasm() -> Path:
    return suite_wasm()


@pytest.fixture
def app_dir(tmp_path: Path, probe_wasm: Path) -> Path:
    shutil.copy(probe_wasm, tmp_path / "probe.wasm")
    (tmp_path / "wasikv.toml").write_text(MANIFEST)
    (tmp_path / "runtime-config.toml").write_text(RUNTIME_CONFIG)
    return tmp_path


@contextmanager
def stopped(app_dir: Path) -> Iterator[Host]:
    """The application's stores while no watcher runs."""
    with Host(load_app(app_dir).stores, compile_cache=False) as host:
        yield host


@contextmanager
def running(app_dir: Path) -> Iterator[tuple[Host, WatchTriggers]]:
    """The application as `wasikv up` runs its watchers: one server run."""
    loaded = load_app(app_dir)
    with Host(loaded.stores, cache_dir=COMPILE_CACHE) as host:
        with WatchTriggers.from_app(loaded, host, poll_interval=0.02, retry=FAST_RETRY) as watchers:
            yield host, watchers


def caught_up(watchers: WatchTriggers) -> None:
    for runner in watchers.runners:
        last = runner.store.last_change()
        assert runner.wait_for(last, TIMEOUT), f"runner stuck at {runner.cursor}, store at {last}"


def ops(host: Host) -> list[tuple[str, str, str | None]]:
    """What the probe watcher recorded, in delivery order."""
    raw = host.bucket("seen").get("log")
    entries: list[dict[str, Any]] = json.loads(raw) if raw else []
    return [(e["op"], e["key"], e.get("value")) for e in entries]


def old_cursor_file(app_dir: Path) -> Path:
    """Where wasikv before positions-in-the-store kept this app's cursor."""
    loaded = load_app(app_dir)
    return cursor_path(app_dir / ".wasikv", "probe", "default", loaded.stores["default"], "")


def within(seconds: float, call: Callable[[], object]) -> BaseException | None:
    """Run `call` on a thread; fail unless it ends within `seconds`; return what it raised."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            call()
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s: start-up hangs"
    return outcome[0]


# ------------------------------------------------------------- restarts


def test_positions_survive_a_restart(app_dir: Path) -> None:
    with running(app_dir) as (host, watchers):
        host.bucket().set("a", b"1")
        host.bucket().set("b", b"2")
        caught_up(watchers)
    with stopped(app_dir) as host:
        store = host.bucket().store
        assert store.keeps_positions and store.load_position(POSITION) == 2
        host.bucket().set("c", b"3")  # written while the server is stopped
        host.bucket().delete("a")
    with running(app_dir) as (host, watchers):
        assert watchers.runners[0].position == POSITION
        caught_up(watchers)
        host.bucket().set("d", b"4")
        caught_up(watchers)
        assert ops(host) == [
            ("set", "a", "1"),
            ("set", "b", "2"),
            ("set", "c", "3"),
            ("delete", "a", None),
            ("set", "d", "4"),
        ]
    with stopped(app_dir) as host:
        assert host.bucket().store.load_position(POSITION) == 5  # saved by the batch, and at stop


def test_deleting_the_state_directory_while_stopped_skips_nothing(app_dir: Path) -> None:
    with running(app_dir) as (host, watchers):
        host.bucket().set("before", b"1")
        caught_up(watchers)
    assert not (app_dir / ".wasikv" / "watch").exists()  # nothing of the position lives there
    with stopped(app_dir) as host:
        for i in range(5):
            host.bucket().set(f"while-stopped/{i}", str(i).encode())
    (app_dir / ".wasikv").mkdir(exist_ok=True)
    (app_dir / ".wasikv" / "build-state.json").write_text("{}")
    shutil.rmtree(app_dir / ".wasikv")  # what an operator clearing state does
    with running(app_dir) as (host, watchers):
        caught_up(watchers)
        assert ops(host) == [("set", "before", "1")] + [
            ("set", f"while-stopped/{i}", str(i)) for i in range(5)
        ]
        assert watchers.runners[0].missed == 0


def test_a_new_trigger_starts_at_the_newest_change_and_saves_it_at_once(app_dir: Path) -> None:
    with stopped(app_dir) as host:
        host.bucket().set("before-the-trigger", b"x")
    with running(app_dir) as (host, watchers):
        assert host.bucket().store.load_position(POSITION) == 1
        host.bucket().set("after", b"y")
        caught_up(watchers)
        assert ops(host) == [("set", "after", "y")]


def test_a_recreated_store_starts_at_its_newest_change(app_dir: Path) -> None:
    with running(app_dir) as (host, watchers):
        for key in "abc":
            host.bucket().set(key, b"old store")
        caught_up(watchers)
    for path in (app_dir / "data").glob("kv.db*"):
        path.unlink()  # feed and positions go together
    with stopped(app_dir) as host:
        host.bucket().set("new", b"1")
    with running(app_dir) as (host, watchers):
        host.bucket().set("newer", b"2")
        caught_up(watchers)
        assert [key for _, key, _ in ops(host)] == ["a", "b", "c", "newer"]


# ----------------------------------------------------- old cursor files


def test_an_old_cursor_file_is_moved_into_the_store(app_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with stopped(app_dir) as host:
        for key in "abc":
            host.bucket().set(key, key.encode())
    old = old_cursor_file(app_dir)
    old.parent.mkdir(parents=True)
    old.write_text(json.dumps({"component": "probe", "store": "default", "prefix": "", "cursor": 1}))
    caplog.set_level(logging.INFO, logger="wasikv.watch")
    with running(app_dir) as (host, watchers):
        caught_up(watchers)
        assert ops(host) == [("set", "b", "b"), ("set", "c", "c")]  # resumed after seq 1
    with stopped(app_dir) as host:
        assert host.bucket().store.load_position(POSITION) == 3
    assert not old.exists() and not old.parent.exists()
    messages = [r.getMessage() for r in caplog.records]
    assert any("moved its position 1 from" in m and str(old) in m for m in messages)
    # Read once: the next start uses the store alone.
    with running(app_dir) as (host, watchers):
        caught_up(watchers)
        assert len(ops(host)) == 2


def test_an_old_cursor_file_is_ignored_when_the_store_has_the_position(
    app_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with stopped(app_dir) as host:
        for key in "abc":
            host.bucket().set(key, key.encode())
        host.bucket().store.save_position(POSITION, 2)
    old = old_cursor_file(app_dir)
    old.parent.mkdir(parents=True)
    old.write_text("{not even json")
    caplog.set_level(logging.INFO, logger="wasikv.watch")
    with running(app_dir) as (host, watchers):
        caught_up(watchers)
        assert ops(host) == [("set", "c", "c")]
    assert any("ignoring the old cursor file" in r.getMessage() for r in caplog.records)


def _corrupt(path: Path) -> None:
    path.write_text('{"cursor": 12')


def _oversized(path: Path) -> None:
    path.write_text(json.dumps({"cursor": 1, "padding": "x" * 5000}))


def _negative(path: Path) -> None:
    path.write_text('{"cursor": -1}')


def _not_an_int(path: Path) -> None:
    path.write_text('{"cursor": true}')


def _directory(path: Path) -> None:
    path.mkdir()
    (path / "inside").write_text("x")


def _fifo(path: Path) -> None:
    os.mkfifo(path)


BAD_FILES: dict[str, tuple[Callable[[Path], None], str]] = {
    "corrupt": (_corrupt, "is not valid JSON"),
    "oversized": (_oversized, "more than a cursor file holds"),
    "negative": (_negative, "holds no valid cursor"),
    "not-an-int": (_not_an_int, "holds no valid cursor"),
    "directory": (_directory, "is a directory"),
    "fifo": (_fifo, "is a FIFO"),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_an_unusable_old_cursor_file_is_a_prompt_start_up_error(app_dir: Path, kind: str) -> None:
    make, problem = BAD_FILES[kind]
    with stopped(app_dir) as host:
        host.bucket().set("a", b"1")
    old = old_cursor_file(app_dir)
    old.parent.mkdir(parents=True)
    make(old)
    loaded = load_app(app_dir)
    with Host(loaded.stores, cache_dir=COMPILE_CACHE) as host:
        host.load(app_dir / "probe.wasm")  # compiled before the clock starts
        started = time.monotonic()
        try:
            error = within(PROMPT, lambda: WatchTriggers.from_app(loaded, host))
        finally:
            if kind == "fifo":
                _release_a_blocked_reader(old)
        elapsed = time.monotonic() - started
        assert isinstance(error, ConfigError), error
        message = str(error)
        assert str(old) in message and problem in message and "Delete it" in message
        assert elapsed < PROMPT
        # Nothing was decided for the operator: no position, the file untouched.
        assert host.bucket().store.load_position(POSITION) is None
    assert os.path.lexists(old)


@pytest.mark.timeout(120)
def test_a_runner_started_directly_refuses_a_fifo_promptly(app_dir: Path) -> None:
    old = old_cursor_file(app_dir)
    old.parent.mkdir(parents=True)
    os.mkfifo(old)
    loaded = load_app(app_dir)
    with Host(loaded.stores, cache_dir=COMPILE_CACHE) as host:
        watcher = WatcherComponent(host, host.load(app_dir / "probe.wasm"), "default", name="probe")
        runner = WatchRunner(watcher, position=POSITION, old_cursor=old)
        try:
            error = within(PROMPT, runner.start)
        finally:
            _release_a_blocked_reader(old)
            runner.stop()
        assert isinstance(error, ConfigError) and "is a FIFO" in str(error) and str(old) in str(error)
        assert not runner.running


def _release_a_blocked_reader(fifo: Path) -> None:
    # Should the code under test have opened the FIFO blocking, a writer lets it go.
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


# ------------------------------------------------------------ the stores


def test_sqlite_positions_survive_reopening(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "kv.db")
    assert SqliteStore.keeps_positions
    store.set("k", b"v")
    store.save_position(POSITION, 1)
    store.save_position("other reader", 0)
    store.close()
    again = SqliteStore(tmp_path / "kv.db")
    try:
        assert again.load_position(POSITION) == 1
        assert again.load_position("other reader") == 0
        assert again.load_position("never saved") is None
        assert again.list_keys(None, 10) == ["k"] and again.last_change() == 1
    finally:
        again.close()


def test_a_sqlite_store_from_before_positions_gets_them(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    SqliteStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE watch_positions")  # as a store written by an older wasikv
    conn.close()
    store = SqliteStore(path)
    try:
        assert store.load_position("reader") is None
        store.save_position("reader", 0)
        assert store.load_position("reader") == 0
    finally:
        store.close()


def test_memory_positions_end_with_the_store() -> None:
    assert not MemoryStore.keeps_positions
    store = MemoryStore()
    store.save_position("reader", 3)
    assert store.load_position("reader") == 3
    assert MemoryStore().load_position("reader") is None


def test_a_memory_store_trigger_saves_no_position(app_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    (app_dir / "runtime-config.toml").write_text(
        '[key_value_store.default]\ntype = "memory"\n\n[key_value_store.seen]\ntype = "memory"\n'
    )
    caplog.set_level(logging.WARNING, logger="wasikv.watch")
    with running(app_dir) as (host, watchers):
        assert watchers.runners[0].position is None
        host.bucket().set("k", b"v")
        caught_up(watchers)
        assert ops(host) == [("set", "k", "v")]
        assert host.bucket().store.load_position(POSITION) is None
    assert not [r for r in caplog.records if r.name == "wasikv.watch"]  # memory stores: no warning


def test_position_names_are_unambiguous_and_bounded() -> None:
    assert position_name("a", "b", "c/d") != position_name("a", "b/c", "d")
    assert position_name("app", "web", "notes/") == '["app","web","notes/"]'
    long = position_name("app", "web", "p" * 1000)
    assert long.startswith("sha256:") and len(long) < 100
    assert long == position_name("app", "web", "p" * 1000)
