"""Several wasikv hosts sharing state through a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from wasikv import Host
from wasikv.stores import open_store

from . import postgres_support as pg
from .support import conformance_in_processes, run_in

pytestmark = pytest.mark.slow


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A store URL in a schema of this test's own (dropped after)."""
    pg.require_postgres()
    schema = pg.unique_schema()
    yield pg.postgres_url(schema)
    pg.drop_schema(schema)


def test_four_hosts_increment_one_postgres_key(postgres_url: str, make_host: Callable[..., Host]) -> None:
    reports = conformance_in_processes(postgres_url, "counter-loop", 250)
    assert all(r["error_count"] == 0 for r in reports)
    assert make_host({"default": postgres_url}).bucket().get("counter") == b"1000"


def test_four_hosts_cas_loops_on_one_postgres_key(postgres_url: str, make_host: Callable[..., Host]) -> None:
    reports = conformance_in_processes(postgres_url, "cas-loop", 250)
    assert all(r["error_count"] == 0 and r["done"] == 250 for r in reports)
    assert make_host({"default": postgres_url}).bucket().get("cas-counter") == b"1000"
    print("CAS retries per host:", [r["retries"] for r in reports])
    # Every successful swap is one change, numbered without gaps: failed swaps took no number.
    store = open_store(postgres_url, label="default")
    try:
        changes = store.changes(0, 10_000)
    finally:
        store.close()
    swaps = [change for change in changes if change.key == "cas-counter"]
    assert [change.value for change in swaps] == [str(i).encode() for i in range(1, 1001)]
    assert [change.seq for change in changes] == list(range(1, len(changes) + 1))


def test_labels_are_isolated_in_one_schema(make_host: Callable[..., Host]) -> None:
    pg.require_postgres()
    schema = pg.unique_schema()
    url = pg.postgres_url(schema)
    try:
        host = make_host({"default": url, "other": url})
        peer = make_host({"default": pg.postgres_url(schema, table_prefix="peer")})
        run_in(host, "conformance", ["counter-loop", "5"])
        host.bucket("other").set("counter", b"x")
        assert host.bucket("default").get("counter") == b"5"
        assert peer.bucket().get("counter") is None
        assert list(peer.bucket().keys()) == []
        assert list(host.bucket("other").keys()) == ["counter"]
    finally:
        pg.drop_schema(schema)


def test_postgres_outage_reaches_guests_as_errors_and_recovers(
    tmp_path: Path, make_host: Callable[..., Host]
) -> None:
    with pg.PostgresServer(tmp_path / "pg") as server:
        host = make_host({"default": server.url(connect_timeout=1)})
        assert run_in(host, "conformance", ["counter-loop", "3"]).json()["error_count"] == 0
        server.stop()
        down = run_in(host, "conformance", ["counter-loop", "2"]).json()
        assert down["error_count"] == 2
        assert down["errors"][0]["err"] == "other" and server.address in down["errors"][0]["msg"]
        server.start()
        back = run_in(host, "conformance", ["counter-loop", "2"]).json()
        assert back["error_count"] == 0 and back["last"] == 5  # the server kept every write
