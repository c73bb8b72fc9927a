"""The embedding API: Host, host-side buckets, grants, limits, threads and failures."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from wasikv import (
    CasConflict,
    ComponentError,
    ConfigError,
    Host,
    InstancePool,
    LimitExceeded,
    Limits,
    NoSuchStore,
    StoreError,
)

from .support import COMPILE_CACHE, run_in, suite_wasm, tiny_command

MakeHost = Callable[..., Host]


def test_host_and_guests_share_a_memory_store(make_host: MakeHost) -> None:
    host = make_host({"default": "memory:"})
    host.bucket().set("counter", b"41")
    report = run_in(host, "conformance", ["counter-loop", "1"]).json()
    assert report["last"] == 42
    assert host.bucket().get("counter") == b"42"


def test_labels_with_one_url_share_one_store(make_host: MakeHost, tmp_path: Path) -> None:
    url = f"sqlite:{tmp_path / 'one.db'}"
    host = make_host({"a": url, "b": url, "c": "memory:"})
    host.bucket("a").set("k", b"v")
    assert host.bucket("b").get("k") == b"v"
    assert host.bucket("c").get("k") is None
    assert host.labels == ["a", "b", "c"]


def test_host_bucket_api(make_host: MakeHost) -> None:
    host = make_host({"default": "memory:"}, Limits(list_page_size=3))
    bucket = host.bucket()
    bucket.set_many({f"user/{i}": str(i).encode() for i in range(7)} | {"a": b"", "z": b"last"})
    assert bucket.get("a") == b"" and bucket.exists("a") and not bucket.exists("missing")
    assert list(bucket.keys()) == ["a"] + [f"user/{i}" for i in range(7)] + ["z"]
    assert list(bucket.keys("user/")) == [f"user/{i}" for i in range(7)]
    assert list(bucket.keys("user/3")) == ["user/3"]
    assert bucket.get_many(["z", "nope", "a"]) == {"z": b"last", "nope": None, "a": b""}
    bucket.delete_many(["a", "nope"])
    assert not bucket.exists("a")
    assert bucket.increment("n", 5) == 5 and bucket.increment("n", -6) == -1
    assert bucket.get("n") == b"-1"
    with pytest.raises(StoreError, match="not a decimal integer"):
        bucket.increment("z")


def test_host_cas_and_update(make_host: MakeHost) -> None:
    bucket = make_host({"default": "memory:"}).bucket()
    with bucket.cas("k") as cas:
        assert cas.current is None
        cas.swap(b"1")
    with bucket.cas("k") as cas:
        bucket.set("k", b"1")  # same bytes, still a newer version
        with pytest.raises(CasConflict):
            cas.swap(b"2")
    assert bucket.update("k", lambda old: str(int(old or b"0") + 1).encode()) == b"2"
    with pytest.raises(CasConflict, match="lost 3"):
        bucket.update("k", lambda old: (bucket.set("k", b"x"), b"y")[1], max_attempts=3)


def test_host_side_limits(make_host: MakeHost) -> None:
    bucket = make_host({"default": "memory:"}, Limits(max_key_bytes=8, max_value_bytes=4)).bucket()
    with pytest.raises(LimitExceeded, match="max_key_bytes=8"):
        bucket.set("123456789", b"")
    with pytest.raises(LimitExceeded, match="max_value_bytes=4"):
        bucket.set("k", b"12345")
    with bucket.cas("k") as cas, pytest.raises(LimitExceeded, match="max_value_bytes=4"):
        cas.swap(b"12345")
    assert not bucket.exists("k")


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"max_value_bytes": 64 << 20}, "exceeds"),
        ({"max_open_cas": 0}, "max_open_cas must be at least 1"),
        ({"list_page_size": -1}, "list_page_size"),
    ],
)
def test_invalid_limits_are_refused(limits: dict[str, int], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Limits(**limits)


def test_configuration_errors() -> None:
    with pytest.raises(ConfigError, match="nope://x"):
        Host({"default": "nope://x"}, compile_cache=False)
    with pytest.raises(ConfigError, match="empty"):
        Host({"": "memory:"}, compile_cache=False)
    host = Host({"default": "memory:"}, compile_cache=False)
    with pytest.raises(NoSuchStore):
        host.bucket("other")


def test_a_locked_sqlite_store_reaches_the_guest_as_other(make_host: MakeHost, tmp_path: Path) -> None:
    db = tmp_path / "locked.db"
    host = make_host({"default": f"sqlite:{db}?busy_timeout=100"})
    host.bucket().set("counter", b"1")
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        report = run_in(host, "conformance", ["counter-loop", "2"]).json()
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert report["error_count"] == 2
    assert report["errors"][0]["err"] == "other" and "locked" in report["errors"][0]["msg"]
    after = run_in(host, "conformance", ["counter-loop", "1"]).json()
    assert after["last"] == 2 and after["error_count"] == 0


def test_guests_in_parallel_threads_share_one_host(make_host: MakeHost, tmp_path: Path) -> None:
    host = make_host({"default": f"sqlite:{tmp_path / 'threads.db'}", "mem": "memory:"})
    component = host.load(suite_wasm())
    failures: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(5):
                code = host.run(component, ["conformance", "counter-loop", "20"], stdout=_Sink())
                assert code == 0
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert host.bucket().get("counter") == b"400"


class _Sink:
    def write(self, data: bytes) -> int:
        return len(data)


def test_compiled_components_are_cached_on_disk_and_shared_with_pooled_hosts(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # (Damaged and tampered entries: tests/test_compile_cache.py.)
    wasm = tmp_path / "app.wasm"
    wasm.write_bytes(tiny_command())
    cache = tmp_path / "cache"
    compiled: list[str] = []

    @contextlib.contextmanager
    def on_compile(origin: str) -> Iterator[None]:
        compiled.append(f"start {origin}")
        yield
        compiled.append("end")

    with Host({"default": "memory:"}, cache_dir=cache, on_compile=on_compile) as host:
        assert host.run(wasm) == 0
        assert host.run(wasm) == 0  # from the cache: no compile
    # on_compile wraps the compile itself (progress displays hang on it).
    assert compiled == [f"start {wasm}", "end"] and len(list(cache.glob("*.cwasm"))) == 1
    # `wasikv up` runs pooled hosts: the pool changes no compiled code, so
    # they load what `wasikv run` compiled.
    with Host(
        {"default": "memory:"}, cache_dir=cache, on_compile=on_compile, instance_pool=InstancePool()
    ) as host:
        assert host.run(wasm) == 0
    assert len(compiled) == 2
    assert capfd.readouterr() == ("", "")  # the library itself prints no progress


def test_a_long_line_of_captured_guest_output_arrives_whole(make_host: MakeHost) -> None:
    # Captured output passes at most 8 KiB per write; the rest used to be lost (wasikv_sdk._stdio).
    long = "x" * 50_000
    run = run_in(make_host({"default": "memory:"}), "probe", ["report", long])
    assert run.exit_code == 0, run.stderr
    assert run.json()["argv"][2] == long


def test_a_component_without_run_is_refused(make_host: MakeHost) -> None:
    # A minimal component that exports nothing at all.
    empty = b"\0asm\x0d\x00\x01\x00"
    with pytest.raises(ComponentError, match="wasi:cli/run"):
        make_host({"default": "memory:"}).run(empty)
    with pytest.raises(ComponentError, match="wasi:cli/run"):  # any bytes-like object, not a path
        make_host({"default": "memory:"}).run(memoryview(bytearray(empty)))


def test_instance_pool_runs_guests_and_refuses_past_its_limit() -> None:
    with Host(
        {"default": "memory:"}, cache_dir=COMPILE_CACHE, instance_pool=InstancePool(max_instances=1)
    ) as host:
        component = host.load(suite_wasm())
        assert run_in(host, "conformance", ["counter-loop", "3"]).json()["last"] == 3
        with host.instantiate(component), pytest.raises(ComponentError, match="cannot instantiate"):
            host.run(component, ["conformance", "counter-loop", "1"])
        assert run_in(host, "conformance", ["counter-loop", "1"]).json()["last"] == 4
