"""What only the PostgreSQL store does: URLs, tables per label, concurrent opens, outages, NOTIFY."""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from wasikv.app.runtime_config import parse_runtime_config
from wasikv.errors import ConfigError, StoreError
from wasikv.stores import open_store

from .. import postgres_support as pg

pg.require_psycopg()

from wasikv.stores.postgres import PostgresStore, config_url, default_table, parse_url, redact  # noqa: E402

SECRET = "s3cr%40t"  # percent-encoded "s3cr@t"


@pytest.fixture
def schema() -> Iterator[str]:
    """A schema of this test's own in database test, dropped afterwards."""
    pg.require_postgres()
    name = pg.unique_schema()
    yield name
    pg.drop_schema(name)


@pytest.fixture
def opened() -> Iterator[Callable[..., PostgresStore]]:
    """Open stores from URLs (with a label); all are closed afterwards."""
    stores: list[PostgresStore] = []

    def open_(url: str, label: str | None = None) -> PostgresStore:
        store = open_store(url, label=label)
        assert isinstance(store, PostgresStore)
        stores.append(store)
        return store

    yield open_
    for store in stores:
        store.close()


def tables(schema: str) -> set[str]:
    """The names of every relation (tables, indexes) in `schema`."""
    with pg.raw_connection() as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s",
            (schema,),
        ).fetchall()
    return {row[0] for row in rows}


# -- URLs ----------------------------------------------------------------------


def test_url_defaults_and_percent_decoding() -> None:
    args = parse_url(f"postgresql://app%20user:{SECRET}@db.example:6543/my%2Ddb", "notes")
    assert args["host"] == "db.example" and args["port"] == 6543
    assert args["user"] == "app user" and args["password"] == "s3cr@t" and args["dbname"] == "my-db"
    assert args["schema"] == "wasikv" and args["table_prefix"] is None and args["label"] == "notes"
    assert (args["min_size"], args["max_size"]) == (1, 10)
    assert (args["connect_timeout"], args["statement_timeout"]) == (5.0, 30.0)
    bare = parse_url("postgres://localhost/kv", None)
    assert bare["user"] is None and bare["password"] is None and bare["port"] == 5432


def test_url_options() -> None:
    args = parse_url(
        "postgres://h/db?schema=App_1&table_prefix=orders_v2&connect_timeout=1.5&statement_timeout=2"
        "&min_size=0&max_size=3&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem",
        None,
    )
    assert args["schema"] == "App_1" and args["table_prefix"] == "orders_v2"
    assert (args["connect_timeout"], args["statement_timeout"]) == (1.5, 2.0)
    assert (args["min_size"], args["max_size"]) == (0, 3)
    assert args["sslmode"] == "verify-full" and args["sslrootcert"] == "/etc/ca.pem"
    assert parse_url("postgres://[::1]:5433/db", None)["host"] == "::1"


@pytest.mark.parametrize(
    ("tail", "message"),
    [
        ("h:port/db", "Port could not be cast"),
        ("h:99999/db", "out of range"),
        ("h", "names no database"),
        ("h/", "names no database"),
        ("h/a/b", "names no database"),
        ("h1,h2/db", "one host"),
        ("h/db#x", "no '#' part"),
        ("h/db?prefix=x", "unknown parameter 'prefix'"),
        ("h/db?schema=", "needs a value"),
        ("h/db?schema=a&schema=b", "given twice"),
        ("h/db?schema=1abc", "schema '1abc'"),
        ("h/db?schema=a-b", "schema 'a-b'"),
        ("h/db?table_prefix=Orders", "table_prefix 'Orders'"),
        ("h/db?table_prefix=a__b", "table_prefix 'a__b'"),
        ("h/db?table_prefix=a_", "table_prefix 'a_'"),
        ("h/db?table_prefix=" + "a" * 41, "table_prefix"),
        ("h/db?connect_timeout=0", "connect_timeout must be a positive number"),
        ("h/db?statement_timeout=nan", "statement_timeout must be a positive number"),
        ("h/db?max_size=0", "max_size must be a whole number from 1"),
        ("h/db?min_size=5&max_size=2", "min_size .5. must not be larger than max_size .2."),
        ("h/db?min_size=-1", "min_size must be a whole number"),
        ("h/db?sslmode=sometimes", "sslmode must be one of"),
        ("h/%ff", "percent-encoding"),
    ],
)
def test_bad_urls_are_config_errors_without_the_password(tail: str, message: str) -> None:
    url = f"postgres://app:{SECRET}@{tail}"
    with pytest.raises(ConfigError, match=message) as caught:
        open_store(url)
    text = str(caught.value)
    assert SECRET not in text and "s3cr@t" not in text
    assert "app:***@" in text


def test_redact() -> None:
    assert redact("postgres://u:p%40ss@h/db?x=1") == "postgres://u:***@h/db?x=1"
    assert redact("postgres://u@h/db") == "postgres://u@h/db"
    # Refused as unknown, but hidden in the message that says so.
    assert redact("postgres://h/db?password=x&schema=s") == "postgres://h/db?password=***&schema=s"
    assert redact("postgres://h/db?sslpassword=x#f") == "postgres://h/db?sslpassword=***#f"


def test_default_tables_per_label() -> None:
    assert default_table("notes").startswith("kv_notes_")
    assert default_table(None) == default_table("default")
    names = {default_table(label) for label in ("a-b", "a_b", "A_B", "ключ", "", "a" * 200, "x|y")}
    assert len(names) == 7  # labels that slug alike still get tables of their own
    for name in names:
        assert "__" not in name and len(name) <= 40 and name == name.lower()


def test_config_url() -> None:
    url = "postgres://app@db:5432/kv?schema=apps"
    assert config_url("orders", {"type": "postgres", "url": url}, Path("."), Path(".")) == url
    with pytest.raises(ValueError, match="'url' is missing"):
        config_url("orders", {"type": "postgres"}, Path("."), Path("."))
    with pytest.raises(ValueError, match="must be a string starting with postgres://"):
        config_url("orders", {"type": "postgres", "url": "db:5432"}, Path("."), Path("."))
    with pytest.raises(ValueError, match="unknown parameter 'prefix'") as caught:
        config_url("orders", {"url": f"postgres://app:{SECRET}@db/kv?prefix=x"}, Path("."), Path("."))
    assert SECRET not in str(caught.value)


def test_runtime_config_type_postgres(tmp_path: Path) -> None:
    text = '[key_value_store.orders]\ntype = "postgres"\nurl = "postgresql://app@db/kv"\n'
    stores = parse_runtime_config(text, tmp_path / "runtime-config.toml", manifest_dir=tmp_path)
    assert stores["orders"] == "postgresql://app@db/kv"
    with pytest.raises(ConfigError, match="unknown key 'path'"):
        parse_runtime_config(
            '[key_value_store.a]\ntype = "postgres"\nurl = "postgres://h/db"\npath = "x"\n',
            tmp_path / "runtime-config.toml",
            manifest_dir=tmp_path,
        )


def test_unreachable_server_is_a_store_error_naming_the_host() -> None:
    port = pg.free_port()
    with pytest.raises(StoreError) as caught:
        open_store(f"postgres://app:{SECRET}@127.0.0.1:{port}/kv?connect_timeout=1")
    text = str(caught.value)
    assert f"127.0.0.1:{port}/kv" in text and "cannot connect" in text
    assert SECRET not in text and "s3cr@t" not in text


# -- tables, labels, schemas -------------------------------------------------------


def test_each_label_gets_tables_of_its_own(schema: str, opened: Callable[..., PostgresStore]) -> None:
    url = pg.postgres_url(schema)
    notes, orders = opened(url, "notes"), opened(url, "orders")
    notes.set("k", b"notes")
    orders.set("k", b"orders")
    assert notes.get("k") == b"notes" and orders.get("k") == b"orders"
    notes.save_position("reader", 5)
    assert orders.load_position("reader") is None
    assert [c.value for c in notes.changes(0, 10)] == [b"notes"]
    assert notes.table == default_table("notes") != orders.table
    expected = set()
    for table in (notes.table, orders.table):
        expected |= {table, f"{table}__changes", f"{table}__positions", f"{table}__meta"}
        expected |= {f"{table}__pkey", f"{table}__live", f"{table}__tombstones"}
        expected |= {f"{table}__changes_pkey", f"{table}__positions_pkey", f"{table}__meta_pkey"}
        expected |= {f"{table}__leases", f"{table}__members"}
        expected |= {f"{table}__leases_pkey", f"{table}__members_pkey"}
    assert tables(schema) == expected
    # The same label opened again (another host) is the same store.
    assert opened(url, "notes").get("k") == b"notes"


def test_an_explicit_table_prefix_is_shared_by_labels(
    schema: str, opened: Callable[..., PostgresStore]
) -> None:
    url = pg.postgres_url(schema, table_prefix="shared")
    one, two = opened(url, "one"), opened(url, "two")
    one.set("k", b"v")
    assert two.get("k") == b"v"
    nested = opened(pg.postgres_url(schema, table_prefix="shared_changes"), "one")
    assert nested.get("k") is None  # a name that extends another is a store of its own
    assert {"shared", "shared__changes", "shared_changes", "shared_changes__changes"} <= tables(schema)


def test_schemas_are_isolated(opened: Callable[..., PostgresStore]) -> None:
    pg.require_postgres()
    first, second = pg.unique_schema(), pg.unique_schema()
    try:
        a, b = opened(pg.postgres_url(first), "notes"), opened(pg.postgres_url(second), "notes")
        a.set("k", b"a")
        assert b.get("k") is None and b.list_keys(None, 10) == [] and b.last_change() == 0
    finally:
        pg.drop_schema(first)
        pg.drop_schema(second)


def test_concurrent_opens_create_one_set_of_tables(schema: str) -> None:
    """Hosts starting together race to create the schema and the tables; all of them win."""
    url = pg.postgres_url(schema, min_size=0)
    barrier = threading.Barrier(8)
    stores: list[PostgresStore] = []
    errors: list[BaseException] = []

    def open_one(label: str) -> None:
        barrier.wait()
        try:
            store = open_store(url, label=label)
            assert isinstance(store, PostgresStore)
            store.increment("n", 1)
            stores.append(store)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one, args=(label,)) for label in ["a"] * 4 + ["b"] * 4]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert not errors, errors
        values = {store.table: store.get("n") for store in stores}
        assert values == {default_table("a"): b"4", default_table("b"): b"4"}
        assert len(tables(schema)) == 2 * 14
    finally:
        for store in stores:
            store.close()


def test_a_foreign_table_of_the_same_name_is_refused(schema: str) -> None:
    with pg.raw_connection() as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        for suffix in ("", "__changes", "__positions", "__meta"):
            conn.execute(f'CREATE TABLE "{schema}"."theirs{suffix}" (id int)')
    with pytest.raises(StoreError, match="not a wasikv table"):
        open_store(pg.postgres_url(schema, table_prefix="theirs"))


def test_a_newer_layout_is_refused(schema: str, opened: Callable[..., PostgresStore]) -> None:
    store = opened(pg.postgres_url(schema), "notes")
    with pg.raw_connection() as conn:
        conn.execute(f'UPDATE "{schema}"."{store.table}__meta" SET layout = 2')
    with pytest.raises(StoreError, match="layout 2 is newer"):
        open_store(pg.postgres_url(schema), label="notes")


def test_long_keys_of_any_bytes_and_shared_prefixes(
    schema: str, opened: Callable[..., PostgresStore]
) -> None:
    """Keys longer than a btree entry holds, and keys alike beyond the indexed prefix, list in order."""
    store = opened(pg.postgres_url(schema), None)
    rng = random.Random(7)
    noise = "".join(chr(rng.randrange(0x20, 0xD7FF)) for _ in range(1400))  # about 4 kB of UTF-8
    common = "p" * 1500
    keys = [noise, common + "b", common + "a", common, common + "\U0001f600", "q"]
    store.set_many([(key, key[-1].encode()) for key in keys])
    assert store.list_keys(None, 100) == sorted(keys)
    assert store.list_keys(common, 100) == sorted(k for k in keys if k > common)
    assert store.list_keys(common + "a", 1) == [common + "b"]
    assert store.get(noise) == noise[-1].encode()
    store.delete(common + "a")
    assert store.get_many([common + "a", common + "b"]) == [None, b"b"]


# -- failures ----------------------------------------------------------------------


def hold_store_lock(schema: str, table: str) -> Any:
    """A raw connection in a transaction that holds the store's lock (its meta row)."""
    conn = pg.raw_connection()
    conn.execute("BEGIN")
    conn.execute(f'SELECT seq FROM "{schema}"."{table}__meta" FOR UPDATE')
    return conn


def test_a_write_past_statement_timeout_was_not_applied(
    schema: str, opened: Callable[..., PostgresStore]
) -> None:
    store = opened(pg.postgres_url(schema, statement_timeout=0.3), "notes")
    blocker = hold_store_lock(schema, store.table)
    try:
        with pytest.raises(StoreError, match=r"statement_timeout.*nothing was written"):
            store.set("k", b"v")
    finally:
        blocker.close()
    assert store.get("k") is None and store.last_change() == 0
    store.set("k", b"v")
    assert store.changes(0, 10)[0].seq == 1


def test_a_write_whose_connection_dies_has_an_unknown_outcome(
    schema: str, opened: Callable[..., PostgresStore]
) -> None:
    store = opened(pg.postgres_url(schema), "notes")
    store.set("k", b"before")
    blocker = hold_store_lock(schema, store.table)
    failures: list[BaseException] = []

    def write() -> None:
        try:
            store.increment("n", 1)
        except BaseException as exc:
            failures.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    # Poll from a connection outside any transaction: inside one, PostgreSQL
    # shows pg_stat_activity as it was at the transaction's first look.
    watcher = pg.raw_connection()
    try:
        deadline = time.monotonic() + 10
        while True:
            killed = watcher.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'wasikv' "
                "AND wait_event_type = 'Lock' AND query LIKE %s",
                (f'%"{schema}"%',),
            ).fetchall()
            if killed or time.monotonic() > deadline:
                break
            time.sleep(0.02)
    finally:
        watcher.close()
        blocker.close()
        writer.join(10)
    assert killed, f"the writer never waited for the lock (it ended with {failures!r})"
    assert len(failures) == 1 and isinstance(failures[0], StoreError)
    assert "may or may not have been applied" in str(failures[0]) and "127.0.0.1:5432/test" in str(
        failures[0]
    )
    # The pool replaced the dead connection.
    assert store.increment("n", 1) == 1
    assert store.get("k") == b"before"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[pg.PostgresServer]:
    """A private PostgreSQL for this test, which it may stop, crash and restart."""
    with pg.PostgresServer(tmp_path / "pg") as private:
        yield private


def test_outage_fails_with_the_host_and_recovers_without_losing_writes(
    server: pg.PostgresServer, opened: Callable[..., PostgresStore]
) -> None:
    store = opened(server.url(connect_timeout=1, min_size=2), "notes")
    watcher = opened(server.url(connect_timeout=1), "notes")
    for i in range(20):
        store.set(f"k{i}", b"v")
        assert store.increment("n", 1) == i + 1
    assert watcher.wait_for_change(0, 1.0)
    server.stop()
    for call in (
        lambda: store.get("k1"),
        lambda: store.increment("n", 1),
        lambda: store.set("k", b"v"),
        lambda: store.list_keys(None, 10),
        lambda: watcher.wait_for_change(10**9, 0.5),
    ):
        started = time.monotonic()
        with pytest.raises(StoreError) as caught:
            call()
        assert server.address in str(caught.value)
        assert time.monotonic() - started < 10
    server.start()
    # Back at once: the pool replaced the connections the restart closed.
    assert store.increment("n", 1) == 21
    assert store.list_keys(None, 100) == [*sorted(f"k{i}" for i in range(20)), "n"]
    last = watcher.last_change()
    threading.Timer(0.1, store.set, ("after", b"restart")).start()
    assert watcher.wait_for_change(last, 10.0)


def test_a_crash_loses_no_acknowledged_write(
    server: pg.PostgresServer, opened: Callable[..., PostgresStore]
) -> None:
    """Increments race a server crash (immediate stop); every acknowledged one survives recovery."""
    store = opened(server.url(connect_timeout=1, max_size=4), "counter")
    acknowledged = [0] * 4
    unknown = [0] * 4
    stop = threading.Event()

    def work(slot: int) -> None:
        while not stop.is_set():
            try:
                store.increment("n", 1)
                acknowledged[slot] += 1
            except StoreError as exc:
                if "may or may not have been applied" in str(exc):
                    unknown[slot] += 1
                time.sleep(0.01)

    threads = [threading.Thread(target=work, args=(slot,)) for slot in range(4)]
    for thread in threads:
        thread.start()
    try:
        # Counted, not timed: the crash lands after 50 acknowledged writes however
        # slow the machine is, and recovery must acknowledge 50 more.
        deadline = time.monotonic() + 15
        while sum(acknowledged) < 50 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.stop("immediate")
        before = sum(acknowledged)
        time.sleep(0.3)
        server.start()
        deadline = time.monotonic() + 15
        while sum(acknowledged) < before + 50 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    total = int(store.get("n") or b"0")
    print(f"crash: {sum(acknowledged)} acknowledged, {sum(unknown)} unknown, {total} stored")
    assert before >= 50, "the writers never got going before the crash"
    assert sum(acknowledged) >= before + 50, "writes did not resume after recovery"
    assert sum(acknowledged) <= total <= sum(acknowledged) + sum(unknown)


# -- NOTIFY ------------------------------------------------------------------------


def test_notify_wakes_a_waiter_quickly(schema: str, opened: Callable[..., PostgresStore]) -> None:
    """Writes from another store object (another pool) wake a waiter within milliseconds."""
    waiter, writer = opened(pg.postgres_url(schema), "feed"), opened(pg.postgres_url(schema), "feed")
    latencies: list[float] = []
    for i in range(20):
        last = waiter.last_change()
        woke = threading.Event()
        result: list[bool] = []

        def wait(last: int = last, result: list[bool] = result, woke: threading.Event = woke) -> None:
            result.append(waiter.wait_for_change(last, 10.0))
            woke.set()

        thread = threading.Thread(target=wait)
        thread.start()
        time.sleep(0.02)  # let the waiter block
        writer.set(f"k{i}", b"v")
        written = time.monotonic()
        assert woke.wait(10.0)
        latencies.append(time.monotonic() - written)
        thread.join()
        assert result == [True]
    median, worst = statistics.median(latencies) * 1000, max(latencies) * 1000
    print(f"NOTIFY wake-up: median {median:.1f} ms, max {worst:.1f} ms")
    assert statistics.median(latencies) < 0.2
    assert max(latencies) < 2.0


def test_a_rolled_back_write_notifies_nobody(schema: str, opened: Callable[..., PostgresStore]) -> None:
    store = opened(pg.postgres_url(schema), "feed")
    store.set("text", b"not a number")
    last = store.last_change()
    assert not store.wait_for_change(last, 0.01)  # starts the listener
    with pytest.raises(StoreError, match="not a decimal integer"):
        store.increment("text", 1)
    assert not store.wait_for_change(last, 0.3)
    v = store.get_versioned("text")
    assert not store.swap("text", v.version + 1, b"x")
    assert not store.wait_for_change(last, 0.3)


def test_the_pool_size_is_bounded(schema: str, opened: Callable[..., PostgresStore]) -> None:
    store = opened(pg.postgres_url(schema, max_size=2, connect_timeout=1), "pool")

    def work() -> None:
        for _ in range(30):
            store.increment("n", 1)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.get("n") == b"180"


def test_a_role_without_create_uses_tables_an_administrator_made(
    server: pg.PostgresServer, opened: Callable[..., PostgresStore]
) -> None:
    admin = opened(server.url("apps"), "orders")
    admin.set("k", b"by admin")
    with pg.raw_connection(server.port, "postgres") as conn:
        conn.execute("CREATE ROLE app LOGIN")
        conn.execute("REVOKE CREATE ON DATABASE postgres FROM PUBLIC")
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        conn.execute("GRANT USAGE ON SCHEMA apps TO app")
        conn.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA apps TO app")
    as_app = server.url("apps").replace(f"{pg.PG_USER}@", "app@")
    store = opened(as_app, "orders")
    assert store.get("k") == b"by admin"
    assert store.increment("n", 2) == 2
    with pytest.raises(StoreError, match="permission denied"):
        open_store(as_app, label="new-label")  # creating tables needs CREATE


def test_two_labels_on_the_same_tables_are_refused() -> None:
    from wasikv import Host

    schema = pg.unique_schema()
    try:
        url = pg.postgres_url(schema) + "&table_prefix=shared"
        with pytest.raises(ConfigError, match=r"store labels 'a' and 'b' use the same PostgreSQL tables"):
            Host({"a": url, "b": url})
        # Without a table_prefix each label has tables of its own.
        with Host({"a": pg.postgres_url(schema), "b": pg.postgres_url(schema)}) as host:
            host.bucket("a").set("k", b"a")
            assert host.bucket("b").get("k") is None
    finally:
        pg.drop_schema(schema)
