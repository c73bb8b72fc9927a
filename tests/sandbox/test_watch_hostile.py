"""Hostile watchers: blocked in host calls, feeding on their own writes; corrupt positions.

The watcher is the suite's hostile guest (tests/guests/suite/hostile.py: keys
under `hostile/` name a misbehaviour by their last segment), run by real
runners in this process and by real `wasikv up` servers.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from wasikv import ConfigError, Host, InstanceSpec, MemoryStore, SqliteStore
from wasikv.stores import open_store
from wasikv.stores.base import Store
from wasikv.triggers.watch import RetryPolicy, WatcherComponent, WatchRunner, position_name

from .. import postgres_support as pg
from ..backends import BACKEND_NAMES, private_store_url
from ..redis_support import REDIS_HOST, REDIS_PORT, TEST_DB
from ..support import COMPILE_CACHE
from ..test_up import free_port
from .test_up_hostile import Up, start_up

pytestmark = pytest.mark.component

TIMEOUT = 1.0  # each watcher call's deadline
FAST_RETRY = RetryPolicy((0.01, 0.02, 0.03))
WAIT = 60.0  # generous bounds that only catch a hang
PREFIX = "hostile/"


@pytest.fixture
def runners() -> Iterator[list[WatchRunner]]:
    started: list[WatchRunner] = []
    yield started
    for runner in started:
        runner.stop()


@pytest.fixture
def start(runners: list[WatchRunner], hostile_wasm: Path) -> Callable[..., WatchRunner]:
    """Start a runner of the hostile watcher on `host`'s default store, prefix `hostile/`."""

    def start_runner(host: Host, **kwargs: object) -> WatchRunner:
        kwargs.setdefault("retry", FAST_RETRY)
        kwargs.setdefault("prefix", PREFIX)
        watcher = WatcherComponent(
            host,
            host.load(hostile_wasm),
            "default",
            name="hostile",
            spec=InstanceSpec(timeout=TIMEOUT),
        )
        runner = WatchRunner(watcher, **kwargs)  # type: ignore[arg-type]
        runner.start()
        runners.append(runner)
        return runner

    return start_runner


def caught_up(runner: WatchRunner, timeout: float = WAIT) -> None:
    last = runner.store.last_change()
    assert runner.wait_for(last, timeout), f"runner stuck at {runner.cursor}, store at {last}"


def eventually(check: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# ------------------------------------------------------- blocked in a host call


def test_a_watcher_blocked_in_a_host_call_is_given_up_retried_and_dropped(
    start: Callable[..., WatchRunner], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="wasikv.watch")
    with Host({"default": f"sqlite:{tmp_path / 'kv.db'}"}, cache_dir=COMPILE_CACHE) as host:
        runner = start(host)
        bucket = host.bucket()
        bucket.set("hostile/a/sleep", b"1")  # time.sleep(3600): a WASI clock wait
        bucket.set("hostile/b/ok", b"2")
        caught_up(runner)
        # The blocked change failed four times on its deadline and was dropped;
        # the change after it was delivered (the trigger is not wedged).
        assert bucket.get("seen/hostile/b/ok") == b'{"ok": true}'
        assert runner.dropped == 1 and runner.failures == FAST_RETRY.attempts and runner.delivered == 1
        assert runner.abandoned == FAST_RETRY.attempts and runner.blocked_calls == FAST_RETRY.attempts
        dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
        assert len(dropped) == 1
        assert "'hostile/a/sleep' (seq 1) after 4 attempts" in dropped[0]
        assert "blocked in a host call past its deadline of 1 s" in dropped[0]
        started = time.monotonic()
        runner.stop()
        assert time.monotonic() - started < 5


def test_a_blocked_call_ends_when_its_host_call_returns_and_past_the_bound_the_trigger_waits(
    start: Callable[..., WatchRunner], caplog: pytest.LogCaptureFixture
) -> None:
    # One given-up call at most: the retry waits until the first nap (3 s)
    # returns, then naps again and is dropped; the next change follows.
    caplog.set_level(logging.INFO, logger="wasikv.watch")
    with Host({"default": "memory:"}, cache_dir=COMPILE_CACHE) as host:
        runner = start(host, retry=RetryPolicy((0.01,)), max_abandoned=1)
        bucket = host.bucket()
        bucket.set("hostile/a/nap", b"1")
        bucket.set("hostile/b/ok", b"2")
        eventually(lambda: runner.blocked_calls == 1)
        eventually(lambda: any("waiting for one to return" in r.getMessage() for r in caplog.records))
        assert bucket.get("seen/hostile/b/ok") is None
        caught_up(runner)
        assert bucket.get("seen/hostile/b/ok") == b'{"ok": true}'
        assert runner.dropped == 1 and runner.abandoned == 2
        assert any("a blocked call returned; delivering again" in r.getMessage() for r in caplog.records)
        # Each given-up call's thread ended when its sleep returned, and the
        # guest wrote nothing after it was given up.
        eventually(lambda: runner.blocked_calls == 0, timeout=10)
        assert bucket.get("seen/hostile/a/nap") is None


def test_stopping_a_runner_whose_watcher_is_blocked_is_quick_and_redelivers_after(
    start: Callable[..., WatchRunner], tmp_path: Path
) -> None:
    with Host({"default": f"sqlite:{tmp_path / 'kv.db'}"}, cache_dir=COMPILE_CACHE) as host:
        first = start(host, position="hostile position")
        host.bucket().set("hostile/a/sleep", b"1")
        time.sleep(0.3)  # the delivery is blocked in its sleep now
        started = time.monotonic()
        first.stop()
        assert time.monotonic() - started < 5 and not first.running
        # Not handled: the position stays before it, so it is delivered again.
        assert host.bucket().store.load_position("hostile position") == 0
        second = start(host, position="hostile position")
        host.bucket().set("hostile/b/ok", b"2")
        caught_up(second)
        assert second.dropped == 1 and host.bucket().get("seen/hostile/b/ok") == b'{"ok": true}'


# ------------------------------------------------------------- own writes


@pytest.fixture(params=BACKEND_NAMES)
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with private_store_url(request.param, tmp_path) as url:
        yield url


def test_a_watcher_writing_the_key_it_watches_is_not_told_about_its_own_write(
    start: Callable[..., WatchRunner], backend_url: str
) -> None:
    with Host({"default": backend_url}, cache_dir=COMPILE_CACHE) as host:
        runner = start(host)
        bucket = host.bucket()
        bucket.set("hostile/a/echo", b"1")  # the watcher writes hostile/a/echo again
        caught_up(runner)
        time.sleep(0.3)
        caught_up(runner)
        assert bucket.get("echoes/hostile/a/echo") == b"1"
        assert runner.skipped_own == 1 and runner.delivered == 1
        # Another writer's write of the same key is delivered as always.
        bucket.set("hostile/a/echo", b"2")
        caught_up(runner)
        time.sleep(0.3)
        caught_up(runner)
        assert bucket.get("echoes/hostile/a/echo") == b"2"
        assert runner.skipped_own == 2 and runner.delivered == 2
        assert len(runner.own_writes or ()) == 0  # nothing left over


def test_own_writes_are_delivered_on_request(start: Callable[..., WatchRunner]) -> None:
    with Host({"default": "memory:"}, cache_dir=COMPILE_CACHE) as host:
        runner = start(host, own_writes=True)
        host.bucket().set("hostile/a/echo", b"1")
        eventually(lambda: int(host.bucket().get("echoes/hostile/a/echo") or 0) >= 5)
        runner.stop()
        assert runner.skipped_own == 0


class _SameWriteFromElsewhere(MemoryStore):
    """A memory store where, once, another writer stores the very bytes the watcher writes, just before it."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = False

    def set(self, key: str, value: bytes) -> None:
        if self.armed and key == "hostile/a/echo":
            self.armed = False
            super().set(key, value)  # "another writer", inside the watcher's write
        super().set(key, value)


def test_an_identical_write_by_another_writer_is_never_skipped(start: Callable[..., WatchRunner]) -> None:
    store = _SameWriteFromElsewhere()
    with Host({"default": store}, cache_dir=COMPILE_CACHE) as host:
        runner = start(host)
        store.set("hostile/a/echo", b"1")
        store.armed = True
        caught_up(runner)
        time.sleep(0.3)
        caught_up(runner)
        # Two identical changes where the watcher wrote one: which is its own
        # cannot be told, so neither is skipped. Both are delivered (the other
        # writer's must be); their echoes are the watcher's own and skipped.
        assert host.bucket().get("echoes/hostile/a/echo") == b"3"
        assert runner.delivered == 3 and runner.skipped_own == 2


# ------------------------------------------------------------ corrupt positions

NAME = "corrupt position"


def _corrupt(store: Store, url: str, how: str, name: str = NAME) -> None:
    """Put a value `save_position` never writes into the position `name`, around wasikv."""
    store.save_position(name, 1)
    if url.startswith("sqlite:"):
        with sqlite3.connect(url.removeprefix("sqlite:")) as conn:
            raw: object = {"text": "garbage", "blob": b"\x00\xff", "negative": -3}[how]
            conn.execute("UPDATE watch_positions SET seq = ? WHERE name = ?", (raw, name))
    elif url.startswith("redis:"):
        import redis

        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=TEST_DB)
        field = {"text": b"garbage", "blob": b"\x00\xff", "negative": b"-3"}[how]
        client.hset(store._positions, name, field)  # type: ignore[attr-defined]
        client.close()
    elif url.startswith("postgres:"):
        with pg.raw_connection() as conn:  # a bigint: only a negative number is wrong
            table = f'"{store.schema}"."{store.table}__positions"'  # type: ignore[attr-defined]
            conn.execute(f"UPDATE {table} SET seq = -3 WHERE name = %s", (name.encode(),))
    else:
        store._positions[name] = {"text": "garbage", "blob": b"\x00", "negative": -3}[how]  # type: ignore[attr-defined]


@pytest.mark.parametrize("how", ["text", "blob", "negative"])
def test_a_corrupt_position_refuses_to_start_naming_store_position_and_fix(
    backend_url: str, hostile_wasm: Path, how: str
) -> None:
    if backend_url.startswith("postgres:") and how != "negative":
        pytest.skip("a bigint column holds numbers only")
    with Host({"default": backend_url}, cache_dir=COMPILE_CACHE) as host:
        store = host.bucket().store
        _corrupt(store, backend_url, how)
        watcher = WatcherComponent(host, host.load(hostile_wasm), "default", name="hostile")
        runner = WatchRunner(watcher, position=NAME)
        with pytest.raises(ConfigError) as refused:
            runner.start()
        message = str(refused.value)
        assert "\n" not in message and not runner.running
        assert message.startswith(f"watch trigger hostile<-default:*: {backend_url.split(':')[0]} store")
        assert f"the watch position {NAME!r} holds" in message
        assert "not a change number" in message and "Delete it to start the trigger from" in message
        if backend_url.startswith("redis:"):
            assert "redis-cli" in message and "HDEL" in message
        elif not backend_url.startswith("memory:"):
            assert "DELETE FROM" in message
        # Deleting it, as the message says, lets the trigger start at the newest change.
        if backend_url.startswith("sqlite:"):
            with sqlite3.connect(backend_url.removeprefix("sqlite:")) as conn:
                conn.execute("DELETE FROM watch_positions WHERE name = ?", (NAME,))
            runner = WatchRunner(watcher, position=NAME)
            runner.start()
            runner.stop()
            assert store.load_position(NAME) == store.last_change()


# ------------------------------------------------------------- wasikv up

MANIFEST = """\
spin_manifest_version = 2
[application]
name = "watch-hostile"

[[trigger.http]]
route = "/hostile/..."
component = "hostile"

[[trigger.key-value]]
store = "default"
prefix = "hostile/"
component = "hostile"

[component.hostile]
source = "hostile.wasm"
key_value_stores = ["default"]
"""


SQLITE_CONFIG = '[key_value_store.default]\ntype = "sqlite"\npath = "kv.db"\n'


@pytest.fixture
def app_dir(hostile_wasm: Path, tmp_path: Path) -> Path:
    shutil.copy(hostile_wasm, tmp_path / "hostile.wasm")
    (tmp_path / "wasikv.toml").write_text(MANIFEST)
    (tmp_path / "runtime-config.toml").write_text(SQLITE_CONFIG)
    return tmp_path


def _up(app_dir: Path) -> Up:
    return start_up(app_dir, "--request-timeout", str(TIMEOUT))


def test_up_gives_up_a_blocked_watcher_stops_quickly_and_is_not_wedged_after_a_restart(app_dir: Path) -> None:
    store = SqliteStore(app_dir / "kv.db")
    server = _up(app_dir)
    try:
        store.set("hostile/a/sleep", b"1")
        store.set("hostile/b/ok", b"2")
        eventually(lambda: store.get("seen/hostile/b/ok") is not None)
        time.sleep(0.5)
        store.set("hostile/c/sleep", b"3")  # blocked when the server stops
        time.sleep(0.5)
        took, err = server.stop(signal.SIGINT)
        assert took < 5 and server.proc.returncode == 0, err
        assert "dropped on-set of key 'hostile/a/sleep'" in err
        assert "blocked in a host call past its deadline of 1 s" in err
        assert "Traceback" not in err and "panicked" not in err
        # After a restart the blocked change is delivered again, given up
        # again, and the changes after it still arrive.
        server = _up(app_dir)
        store.set("hostile/d/ok", b"4")
        eventually(lambda: store.get("seen/hostile/d/ok") is not None)
        took, err = server.stop(signal.SIGTERM)
        assert took < 5 and server.proc.returncode == 0, err
        assert "dropped on-set of key 'hostile/c/sleep'" in err
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.communicate()
        store.close()


def test_up_a_watcher_rewriting_its_key_does_not_loop_across_restarts(app_dir: Path) -> None:
    store = SqliteStore(app_dir / "kv.db")
    try:
        for _ in range(2):
            server = _up(app_dir)
            try:
                if store.get("hostile/a/echo") is None:
                    store.set("hostile/a/echo", b"1")
                eventually(lambda: store.get("echoes/hostile/a/echo") is not None)
                time.sleep(1.0)
                took, err = server.stop(signal.SIGINT)
            finally:
                if server.proc.poll() is None:
                    server.proc.kill()
                    server.proc.communicate()
            assert store.get("echoes/hostile/a/echo") == b"1", err
            assert took < 5 and "Traceback" not in err
    finally:
        store.close()


@pytest.mark.parametrize("backend", [name for name in BACKEND_NAMES if name != "memory"])
def test_up_refuses_a_corrupt_position_with_one_error_line(app_dir: Path, backend: str) -> None:
    with private_store_url(backend, app_dir) as url:
        if backend != "sqlite":
            (app_dir / "runtime-config.toml").write_text(
                f'[key_value_store.default]\ntype = "{backend}"\nurl = "{url}"\n'
            )
        name = position_name("watch-hostile", "hostile", PREFIX)
        store = open_store(url)
        try:
            _corrupt(store, url, "negative", name)
        finally:
            store.close()
        done = subprocess.run(
            [sys.executable, "-m", "wasikv", "up", "--listen", f"127.0.0.1:{free_port()}"],
            cwd=app_dir,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "WASIKV_CACHE_DIR": str(COMPILE_CACHE)},
        )
    assert done.returncode == 1 and "Serving" not in done.stdout, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"Error: watch trigger hostile<-default:hostile/*: {backend} store")
    assert f"the watch position {name!r} holds -3, a negative number" in lines[0]
