"""Several wasikv hosts sharing state through a real Redis server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from wasikv import Host

from .redis_support import (
    REDIS_HOST,
    REDIS_PORT,
    TEST_DB,
    RedisServer,
    delete_prefix,
    require_redis,
    unique_prefix,
)
from .support import conformance_in_processes, run_in

pytestmark = pytest.mark.slow


@pytest.fixture
def redis_url() -> Iterator[str]:
    require_redis()
    prefix = unique_prefix()
    yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{TEST_DB}?prefix={prefix}"
    delete_prefix(prefix)


def test_four_hosts_increment_one_redis_key(redis_url: str, make_host: Callable[..., Host]) -> None:
    reports = conformance_in_processes(redis_url, "counter-loop", 250)
    assert all(r["error_count"] == 0 for r in reports)
    assert make_host({"default": redis_url}).bucket().get("counter") == b"1000"


def test_four_hosts_cas_loops_on_one_redis_key(redis_url: str, make_host: Callable[..., Host]) -> None:
    reports = conformance_in_processes(redis_url, "cas-loop", 250)
    assert all(r["error_count"] == 0 and r["done"] == 250 for r in reports)
    assert make_host({"default": redis_url}).bucket().get("cas-counter") == b"1000"
    print("CAS retries per host:", [r["retries"] for r in reports])


def test_guests_and_host_code_read_their_own_writes(redis_url: str, make_host: Callable[..., Host]) -> None:
    one, two = make_host({"default": redis_url}), make_host({"default": redis_url})
    for round_ in range(1, 4):
        one.bucket().increment("counter", 10)
        first = run_in(one, "conformance", ["counter-loop", "1"]).json()
        second = run_in(two, "conformance", ["counter-loop", "1"]).json()
        assert first["last"] == (round_ - 1) * 12 + 11
        assert second["last"] == round_ * 12
        assert two.bucket().get("counter") == str(round_ * 12).encode()


def test_labels_and_apps_are_isolated_on_one_database(make_host: Callable[..., Host]) -> None:
    require_redis()
    base = f"redis://{REDIS_HOST}:{REDIS_PORT}/{TEST_DB}"
    app_a = f"{base}?prefix={unique_prefix()}"
    app_b = f"{base}?prefix={unique_prefix()}"
    try:
        host = make_host({"default": app_a, "other": base + "?prefix=" + unique_prefix()})
        peer = make_host({"default": app_b})
        run_in(host, "conformance", ["counter-loop", "5"])
        host.bucket("other").set("counter", b"x")
        assert host.bucket("default").get("counter") == b"5"
        assert peer.bucket().get("counter") is None
        assert list(peer.bucket().keys()) == []
        peer.bucket().delete("counter")
        assert host.bucket("default").get("counter") == b"5"
        assert list(host.bucket("other").keys()) == ["counter"]
    finally:
        for url in (app_a, app_b):
            delete_prefix(url.split("prefix=")[1])


def test_redis_outage_reaches_guests_as_errors_and_recovers(
    tmp_path: Path, make_host: Callable[..., Host]
) -> None:
    with RedisServer(tmp_path / "redis", "--save", "", "--appendonly", "no") as server:
        host = make_host({"default": f"redis://{server.address}/0?socket_timeout=1&connect_timeout=1"})
        assert run_in(host, "conformance", ["counter-loop", "3"]).json()["error_count"] == 0
        server.stop()
        down = run_in(host, "conformance", ["counter-loop", "2"]).json()
        assert down["error_count"] == 2
        assert down["errors"][0]["err"] == "other" and server.address in down["errors"][0]["msg"]
        server.start()
        back = run_in(host, "conformance", ["counter-loop", "2"]).json()
        assert back["error_count"] == 0 and back["last"] == 2  # the restarted server kept nothing
