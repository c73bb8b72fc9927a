"""The key-value watch trigger: real watcher components following real stores."""

from __future__ import annotations

import json
import logging
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from wasikv import ComponentError, Host, InstancePool, Limits, SqliteStore
from wasikv.capability import InstanceSpec
from wasikv.stores.base import Change
from wasikv.triggers.http_component import HttpComponent, HttpRequest
from wasikv.triggers.watch import RetryPolicy, WatcherComponent, WatchRunner

from .redis_support import (
    REDIS_HOST,
    REDIS_PORT,
    TEST_DB,
    RedisServer,
    delete_prefix,
    require_redis,
    unique_prefix,
)
from .support import COMPILE_CACHE, ROOT, guest_wasm, suite_wasm

HTTP_WORLD = "wasikv:app/http-trigger"
FAST_RETRY = RetryPolicy((0.01, 0.02, 0.03))
TIMEOUT = 60.0


@pytest.fixture(scope="session")
def probe_wasm() -> Path:
    return suite_wasm()


@pytest.fixture(scope="session")
def notes_wasm() -> Path:
    return guest_wasm("examples/watch-audit", HTTP_WORLD, module="notes")


@pytest.fixture
def hosts() -> Iterator[Callable[..., Host]]:
    made: list[Host] = []

    def make(default: Any, limits: Limits | None = None) -> Host:
        host = Host({"default": default, "seen": "memory:seen"}, limits=limits, cache_dir=COMPILE_CACHE)
        made.append(host)
        return host

    yield make
    for host in made:
        host.close()


@pytest.fixture
def runners() -> Iterator[list[WatchRunner]]:
    started: list[WatchRunner] = []
    yield started
    for runner in started:
        runner.stop()


@pytest.fixture
def start(runners: list[WatchRunner], probe_wasm: Path) -> Callable[..., WatchRunner]:
    """Start a runner of the probe watcher on `host`'s default store."""

    def start_runner(host: Host, **kwargs: Any) -> WatchRunner:
        kwargs.setdefault("retry", FAST_RETRY)
        watcher = WatcherComponent(
            host,
            host.load(probe_wasm),
            "default",
            name="probe",
            spec=InstanceSpec(grants=frozenset({"default", "seen"})),
        )
        runner = WatchRunner(watcher, **kwargs)
        runner.start()
        runners.append(runner)
        return runner

    return start_runner


def seen(host: Host) -> list[dict[str, Any]]:
    """What the probe watcher recorded, in delivery order."""
    raw = host.bucket("seen").get("log")
    entries: list[dict[str, Any]] = json.loads(raw) if raw else []
    return entries


def caught_up(runner: WatchRunner) -> None:
    """Wait until the runner has handled every change committed so far."""
    last = runner.store.last_change()
    assert runner.wait_for(last, TIMEOUT), f"runner stuck at {runner.cursor}, store at {last}"


def sets(host: Host) -> list[tuple[str, str]]:
    return [(e["key"], e["value"]) for e in seen(host) if e["op"] == "set"]


def ops(host: Host) -> list[tuple[str, str, str | None]]:
    return [(e["op"], e["key"], e.get("value")) for e in seen(host)]


# ----------------------------------------------------------- who writes


def test_a_host_api_write_is_delivered(
    hosts: Callable[..., Host], start: Callable[..., WatchRunner], tmp_path: Path
) -> None:
    host = hosts(f"sqlite:{tmp_path / 'kv.db'}")
    runner = start(host)
    bucket = host.bucket()
    bucket.set("greeting", b"hello")
    bucket.delete("greeting")
    caught_up(runner)
    entries = seen(host)
    assert [(e["op"], e["key"]) for e in entries] == [("set", "greeting"), ("delete", "greeting")]
    assert entries[0]["value"] == "hello" and entries[0]["label"] == "default"
    assert entries[1]["exists"] is False
    assert runner.delivered == 2 and runner.dropped == 0 and runner.missed == 0


def test_a_watcher_reads_its_variables(
    hosts: Callable[..., Host], runners: list[WatchRunner], probe_wasm: Path
) -> None:
    host = hosts("memory:")
    watcher = WatcherComponent(
        host,
        host.load(probe_wasm),
        "default",
        name="probe",
        spec=InstanceSpec(grants=frozenset({"default", "seen"}), variables={"greeting": "hello"}),
    )
    runner = WatchRunner(watcher, retry=FAST_RETRY)
    runner.start()
    runners.append(runner)
    host.bucket().set("variables/1", b"x")
    caught_up(runner)
    assert seen(host)[0]["variables"] == {"greeting": "hello"}


def test_a_guest_write_is_delivered(
    hosts: Callable[..., Host], start: Callable[..., WatchRunner], notes_wasm: Path, tmp_path: Path
) -> None:
    host = hosts(f"sqlite:{tmp_path / 'kv.db'}")
    runner = start(host)
    notes = HttpComponent(
        host, host.load(notes_wasm), name="notes", spec=InstanceSpec(grants=frozenset({"default"}))
    )
    for method, body in (("PUT", b"first"), ("PUT", b"second"), ("DELETE", b"")):
        response = notes.handle(HttpRequest(method, "/notes/todo", [("spin-path-info", "/todo")], body))
        assert response.status == 204
    caught_up(runner)
    assert ops(host) == [
        ("set", "notes/todo", "first"),
        ("set", "notes/todo", "second"),
        ("delete", "notes/todo", None),
    ]


def test_a_write_by_another_process_is_delivered(
    hosts: Callable[..., Host], start: Callable[..., WatchRunner], tmp_path: Path
) -> None:
    db = tmp_path / "shared.db"
    host = hosts(f"sqlite:{db}")
    runner = start(host, poll_interval=0.02)

    def wasikv(*args: str) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "wasikv", *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr

    wasikv("kv", "set", "--store", f"sqlite:{db}", "from-cli", "hello from another process")
    wasikv("kv", "incr", "--store", f"sqlite:{db}", "counter", "5")
    wasikv("kv", "delete", "--store", f"sqlite:{db}", "from-cli")
    caught_up(runner)
    assert ops(host) == [
        ("set", "from-cli", "hello from another process"),
        ("set", "counter", "5"),
        ("delete", "from-cli", None),
    ]


def test_writes_by_other_processes_are_delivered_on_redis(
    hosts: Callable[..., Host], start: Callable[..., WatchRunner], tmp_path: Path
) -> None:
    require_redis()
    prefix = unique_prefix()
    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{TEST_DB}?prefix={prefix}"
    try:
        host = hosts(url)
        runner = start(host)
        for args in (("set", "from-cli", "over redis"), ("incr", "hits", "2"), ("delete", "from-cli")):
            done = subprocess.run(
                [sys.executable, "-m", "wasikv", "kv", args[0], "--store", url, *args[1:]],
                capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
        host.bucket().set("from-host", b"too")
        caught_up(runner)
        assert ops(host) == [
            ("set", "from-cli", "over redis"),
            ("set", "hits", "2"),
            ("delete", "from-cli", None),
            ("set", "from-host", "too"),
        ]
    finally:
        delete_prefix(prefix)


def test_a_runner_waits_for_a_store_that_is_down(
    hosts: Callable[..., Host], start: Callable[..., WatchRunner], tmp_path: Path
) -> None:
    server = RedisServer(tmp_path / "redis")  # not started yet
    host = hosts(f"redis://{server.address}/0?connect_timeout=0.5")
    runner = start(host)
    assert not runner.ready and runner.running
    with server:
        deadline = time.monotonic() + TIMEOUT
        while not runner.ready:
            assert time.monotonic() < deadline, "the runner never reached the store"
            time.sleep(0.05)
        host.bucket().set("k", b"after the store came up")
        caught_up(runner)
        runner.stop()
    assert sets(host) == [("k", "after the store came up")]


def test_memory_store_delivery(hosts: Callable[..., Host], start: Callable[..., WatchRunner]) -> None:
    host = hosts("memory:")
    runner = start(host)
    bucket = host.bucket()
    bucket.set("a", b"1")
    bucket.set_many([("b", b"2"), ("c", b"3")])
    bucket.increment("n", 2)
    caught_up(runner)
    assert sets(host) == [("a", "1"), ("b", "2"), ("c", "3"), ("n", "2")]
    assert runner.position is None  # a memory store's feed does not outlive the process


# ------------------------------------------------------- what and in which order


def test_only_keys_under_the_prefix_are_delivered(
    hosts: Callable[..., Host], start: Callable[..., WatchRunner], tmp_path: Path
) -> None:
    host = hosts(f"sqlite:{tmp_path / 'kv.db'}")
    runner = start(host, prefix="orders/")
    bucket = host.bucket()
    for key in ("orders/1", "other", "ordersX", "orders/", "order/2", "orders/2"):
        bucket.set(key, key.encode())
    bucket.delete("other")
    bucket.delete("orders/1")
    caught_up(runner)
    assert ops(host) == [
        ("set", "orders/1", "orders/1"),
        ("set", "orders/", "orders/"),
        ("set", "orders/2", "orders/2"),
        ("delete", "orders/1", None),
    ]
    assert runner.cursor == host.bucket().store.last_change()


@pytest.mark.parametrize("default", ["memory:", "sqlite"])
def test_changes_of_a_key_arrive_in_commit_order(
    hosts: Callable[..., Host], start: Callable[..., WatchRunner], tmp_path: Path, default: str
) -> None:
    host = hosts(default if default == "memory:" else f"sqlite:{tmp_path / 'kv.db'}")
    runner = start(host, batch_size=5)
    bucket = host.bucket()
    rng = random.Random(4)
    expected: dict[str, list[tuple[str, str | None]]] = {"a": [], "b": [], "c": []}

    def writer(key: str) -> None:
        local = random.Random(key)
        for i in range(40):
            if local.random() < 0.2:
                bucket.delete(key)
                expected[key].append(("delete", None))
            else:
                bucket.set(key, f"{key}{i}".encode())
                expected[key].append(("set", f"{key}{i}"))

    threads = [threading.Thread(target=writer, args=(key,)) for key in rng.sample(sorted(expected), 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    caught_up(runner)
    delivered = ops(host)
    assert len(delivered) == 120
    for key, writes in expected.items():
        assert [(op, value) for op, k, value in delivered if k == key] == writes


def test_one_instance_serves_a_batch(hosts: Callable[..., Host], probe_wasm: Path) -> None:
    host = hosts("memory:")
    watcher = WatcherComponent(
        host,
        host.load(probe_wasm),
        "default",
        name="probe",
        spec=InstanceSpec(grants=frozenset({"default", "seen"})),
    )
    assert watcher.deliver([Change(1, "x", b"1"), Change(2, "y", None), Change(3, "z", b"")]) == 3
    assert watcher.deliver([Change(4, "w", b"4")]) == 1
    assert [(e["key"], e["calls_in_instance"]) for e in seen(host)] == [
        ("x", 1),
        ("y", 2),
        ("z", 3),
        ("w", 1),
    ]


# ------------------------------------------------------------- failures


def test_a_trapping_watcher_is_retried_then_dropped(
    hosts: Callable[..., Host],
    start: Callable[..., WatchRunner],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="wasikv.watch")
    host = hosts(f"sqlite:{tmp_path / 'kv.db'}")
    runner = start(host)
    bucket = host.bucket()
    bucket.set("before", b"1")
    bucket.set("trap/deep", b"2")
    bucket.set("raise/boom", b"3")
    bucket.set("after", b"4")
    caught_up(runner)
    assert sets(host) == [("before", "1"), ("after", "4")]
    assert runner.delivered == 2 and runner.dropped == 2
    assert runner.failures == 2 * FAST_RETRY.attempts
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(dropped) == 2
    assert "'trap/deep' (seq 2) after 4 attempts" in dropped[0]
    assert "'raise/boom' (seq 3) after 4 attempts" in dropped[1]
    # The guest's traceback reaches the log too.
    assert any("watcher failed on purpose" in r.getMessage() for r in caplog.records)


def test_a_failure_that_goes_away_is_delivered_once(
    hosts: Callable[..., Host], start: Callable[..., WatchRunner], tmp_path: Path
) -> None:
    host = hosts(f"sqlite:{tmp_path / 'kv.db'}")
    runner = start(host)
    host.bucket().set("flaky/x", b"eventually")
    host.bucket().set("next", b"n")
    caught_up(runner)
    assert sets(host) == [("flaky/x", "eventually"), ("next", "n")]
    assert runner.failures == 2 and runner.dropped == 0 and runner.delivered == 2


def test_a_value_too_large_for_a_guest_is_dropped_without_retries(
    hosts: Callable[..., Host], start: Callable[..., WatchRunner], tmp_path: Path
) -> None:
    host = hosts(f"sqlite:{tmp_path / 'kv.db'}", limits=Limits(max_value_bytes=1000))
    runner = start(host)
    store = host.bucket().store
    store.set("huge", b"x" * 5000)  # another client, not bound by this host's limits
    store.set("small", b"ok")
    caught_up(runner)
    assert sets(host) == [("small", "ok")]
    assert runner.dropped == 1 and runner.failures == 1


def test_no_free_instance_is_waited_out_never_a_reason_to_drop(
    runners: list[WatchRunner], probe_wasm: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="wasikv.watch")
    with Host(
        {"default": "memory:", "seen": "memory:seen"},
        cache_dir=COMPILE_CACHE,
        instance_pool=InstancePool(max_instances=1, keep_resident_bytes=0),
    ) as host:
        component = host.load(probe_wasm)
        runner = WatchRunner(WatcherComponent(host, component, "default", name="probe"), retry=FAST_RETRY)
        runner.start()
        runners.append(runner)
        with host.instantiate(component):  # takes the only instance slot
            host.bucket().set("k", b"v")
            deadline = time.monotonic() + TIMEOUT
            while not any("cannot create an instance" in r.getMessage() for r in caplog.records):
                assert time.monotonic() < deadline, "the runner never tried to deliver"
                time.sleep(0.02)
        caught_up(runner)
        runner.stop()
        assert sets(host) == [("k", "v")]
        assert runner.dropped == 0 and runner.failures == 0


@pytest.mark.parametrize("default", ["memory:", "sqlite"])
def test_writers_are_never_blocked_or_failed_by_a_watcher(
    hosts: Callable[..., Host], start: Callable[..., WatchRunner], tmp_path: Path, default: str
) -> None:
    host = hosts(default if default == "memory:" else f"sqlite:{tmp_path / 'kv.db'}")
    runner = start(host)
    bucket = host.bucket()
    bucket.set("slow/1", b"the watcher sleeps a second on this one")
    bucket.set("trap/1", b"and traps on this one")
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for _ in range(50):
                bucket.increment("count")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert bucket.get("count") == b"200"
    caught_up(runner)
    counts = [int(value) for key, value in sets(host) if key == "count"]
    assert counts == list(range(1, 201))
    assert runner.dropped == 1


# ------------------------------------------------------------ positions

POSITION = "probe position"


def test_a_new_trigger_starts_at_the_newest_change(
    hosts: Callable[..., Host], start: Callable[..., WatchRunner], tmp_path: Path
) -> None:
    host = hosts(f"sqlite:{tmp_path / 'kv.db'}")
    store = host.bucket().store
    store.set("old", b"before the trigger existed")
    runner = start(host, position=POSITION)
    assert store.load_position(POSITION) == 1  # saved at once: a restart cannot skip what comes next
    host.bucket().set("new", b"after")
    caught_up(runner)
    assert sets(host) == [("new", "after")]


def test_a_restart_resumes_from_the_saved_position(
    hosts: Callable[..., Host], start: Callable[..., WatchRunner], tmp_path: Path
) -> None:
    host = hosts(f"sqlite:{tmp_path / 'kv.db'}")
    bucket = host.bucket()
    store = bucket.store
    first = start(host, position=POSITION)
    bucket.set("a", b"1")
    bucket.set("b", b"2")
    caught_up(first)
    first.stop()
    assert store.load_position(POSITION) == 2
    bucket.set("c", b"3")  # written while nobody watches
    bucket.delete("a")
    second = start(host, position=POSITION)
    caught_up(second)
    second.stop()
    assert ops(host) == [("set", "a", "1"), ("set", "b", "2"), ("set", "c", "3"), ("delete", "a", None)]
    assert store.load_position(POSITION) == 4
    # The position is neither a key nor a change.
    assert store.list_keys(None, 10) == ["b", "c"] and store.last_change() == 4


def test_a_crash_before_saving_redelivers_never_loses(
    hosts: Callable[..., Host], start: Callable[..., WatchRunner], tmp_path: Path
) -> None:
    host = hosts(f"sqlite:{tmp_path / 'kv.db'}")
    bucket = host.bucket()
    first = start(host, position=POSITION)
    for key in "abc":
        bucket.set(key, key.encode())
    caught_up(first)
    first.stop()
    bucket.store.save_position(POSITION, 1)  # as if the process died after delivering b and c
    bucket.set("d", b"d")
    second = start(host, position=POSITION)
    caught_up(second)
    assert [key for key, _ in sets(host)] == ["a", "b", "c", "b", "c", "d"]


def test_a_runner_that_fell_behind_the_feed_reports_what_it_missed(
    hosts: Callable[..., Host],
    start: Callable[..., WatchRunner],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = SqliteStore(tmp_path / "kv.db", change_window=10)
    host = hosts(store)
    first = start(host, position=POSITION)
    first.stop()
    for i in range(100):
        store.set(f"k{i}", str(i).encode())
    held = store.changes(0, 1000)
    assert held[0].seq > 1  # the feed no longer holds the first changes
    caplog.set_level(logging.ERROR, logger="wasikv.watch")
    second = start(host, position=POSITION)
    caught_up(second)
    store.close()
    assert second.missed == held[0].seq - 1
    assert [key for key, _ in sets(host)] == [change.key for change in held]
    assert any(
        f"missed {second.missed} changes (seq 1 to {held[0].seq - 1})" in r.getMessage()
        for r in caplog.records
    )


def test_a_position_past_the_store_starts_over(
    hosts: Callable[..., Host], start: Callable[..., WatchRunner], tmp_path: Path
) -> None:
    host = hosts(f"sqlite:{tmp_path / 'kv.db'}")
    host.bucket().set("a", b"1")
    host.bucket().store.save_position(POSITION, 500)  # cannot be this store's: deliver all it holds
    runner = start(host, position=POSITION)
    caught_up(runner)
    assert sets(host) == [("a", "1")]


# ------------------------------------------------------------ components


def test_a_component_without_the_watcher_export_is_refused(
    hosts: Callable[..., Host], notes_wasm: Path
) -> None:
    host = hosts("memory:")
    watcher = WatcherComponent(host, host.load(notes_wasm), "default", name="notes")
    with pytest.raises(ComponentError, match="does not export wasi:keyvalue/watcher"):
        watcher.check()


def test_a_watcher_must_be_granted_its_store(hosts: Callable[..., Host], probe_wasm: Path) -> None:
    host = hosts("memory:")
    with pytest.raises(ComponentError, match="not granted the store 'default'"):
        WatcherComponent(
            host,
            host.load(probe_wasm),
            "default",
            name="probe",
            spec=InstanceSpec(grants=frozenset({"seen"})),
        )


def test_the_sdk_watcher_takes_pythonic_buckets_on_the_host() -> None:
    from wasikv_sdk import watch

    calls: list[tuple[str, str]] = []

    class Recorder(watch.Watcher):
        def on_set(self, bucket: Any, key: str, value: bytes) -> None:
            calls.append((bucket.label, key))

    with Host({"default": "memory:"}, cache_dir=COMPILE_CACHE) as host:
        Recorder().on_set(host.bucket(), "k", b"v")
        Recorder().on_delete(host.bucket(), "k")  # the default ignores the change
    assert calls == [("default", "k")]
    assert str(ROOT)  # the SDK module imported without the guest runtime
