"""Redis-only behaviour: URLs, interop with raw Redis, prefixes, processes and failures.

The contract suite (test_contract.py) already runs every shared behaviour on
Redis; this module covers what only a networked, shared server has. Failure
tests start private `redis-server` processes on free loopback ports and stop,
restart, crash and freeze them for real.
"""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..redis_support import (
    REDIS_HOST,
    REDIS_PORT,
    TEST_DB,
    RedisServer,
    delete_prefix,
    raw_client,
    require_redis,
    require_redis_py,
    self_signed_certificate,
    unique_prefix,
)

require_redis_py()

from wasikv.errors import CorruptPosition, InvalidStoreUrl, StoreError  # noqa: E402
from wasikv.stores import open_store  # noqa: E402
from wasikv.stores.redis import RedisStore, default_prefix  # noqa: E402

SHARED_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/{TEST_DB}"

OpenRedis = Callable[..., RedisStore]


@pytest.fixture
def open_redis() -> Iterator[OpenRedis]:
    """Open stores on the shared server, each under a fresh prefix unless one is given."""
    require_redis()
    opened: list[RedisStore] = []

    def make(prefix: str | None = None, **options: Any) -> RedisStore:
        store = RedisStore(
            REDIS_HOST,
            REDIS_PORT,
            TEST_DB,
            prefix=prefix if prefix is not None else unique_prefix(),
            **options,
        )
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()
        delete_prefix(store.prefix)


@pytest.fixture
def raw() -> Iterator[Any]:
    require_redis()
    client = raw_client()
    yield client
    client.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server that the test may stop, restart and freeze."""
    with RedisServer(tmp_path / "redis") as private:
        yield private


def private_store(server: RedisServer, **options: Any) -> RedisStore:
    return RedisStore(REDIS_HOST, server.port, 0, prefix="t:", **options)


# -- URLs ------------------------------------------------------------------------


def test_url_defaults() -> None:
    store = open_store("redis://")
    assert isinstance(store, RedisStore)
    assert (store.host, store.port, store.db) == ("127.0.0.1", 6379, 0)
    assert store.prefix == "wasikv:default:"
    assert (store.socket_timeout, store.connect_timeout, store.max_connections) == (5.0, 5.0, 50)
    assert not store.tls
    assert store.url == "redis://"
    store.close()


def test_url_parts_and_options() -> None:
    url = "REDIS://us%40er:p%3Ass@cache.example:6380/3?prefix=app1%3A&socket_timeout=0.25&connect_timeout=2&max_connections=7"
    store = open_store(url, label="ignored-when-prefix-given")
    assert isinstance(store, RedisStore)
    assert (store.host, store.port, store.db) == ("cache.example", 6380, 3)
    assert store.prefix == "app1:"
    assert (store.socket_timeout, store.connect_timeout, store.max_connections) == (0.25, 2.0, 7)
    assert store.address == "cache.example:6380/3"
    # The url attribute is for messages: the password is hidden.
    assert store.url == url.replace(":p%3Ass@", ":***@")
    store.close()


def test_tls_and_ipv6_urls(tmp_path: Path) -> None:
    store = open_store(f"rediss://[::1]:7000/1?ssl_ca_certs={tmp_path}/ca.pem")
    assert isinstance(store, RedisStore)
    assert store.tls
    assert (store.host, store.port, store.db) == ("::1", 7000, 1)
    assert store.address == "[::1]:7000/1"
    store.close()


@pytest.mark.parametrize(
    ("label", "prefix"),
    [
        (None, "wasikv:default:"),
        ("default", "wasikv:default:"),
        ("a", "wasikv:a:"),
        ("a:b%", "wasikv:a%3Ab%25:"),
        ("a|b", "wasikv:a%7Cb:"),
    ],
)
def test_default_prefix_from_label(label: str | None, prefix: str) -> None:
    assert default_prefix(label) == prefix
    store = open_store("redis://127.0.0.1/0", label=label)
    assert isinstance(store, RedisStore)
    assert store.prefix == prefix
    store.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis:127.0.0.1", "starts with 'redis://'"),
        ("redis://h:99999/0", "Port out of range"),
        ("redis://h:port/0", "Port could not be cast"),
        ("redis://h/abc", "database number"),
        ("redis://h/0/1", "database number"),
        ("redis://h/-1", "database number"),
        ("redis://h/0#frag", "no '#' part"),
        ("redis://h/0?db=1", "unknown parameter 'db'"),
        ("redis://h/0?prefix=", "needs a value"),
        ("redis://h/0?prefix=a&prefix=b", "given twice"),
        ("redis://h/0?socket_timeout=0", "socket_timeout must be a positive number"),
        ("redis://h/0?socket_timeout=-1", "socket_timeout"),
        ("redis://h/0?connect_timeout=inf", "connect_timeout"),
        ("redis://h/0?connect_timeout=nan", "connect_timeout"),
        ("redis://h/0?socket_timeout=soon", "socket_timeout"),
        ("redis://h/0?max_connections=0", "max_connections must be a whole number"),
        ("redis://h/0?max_connections=1.5", "max_connections"),
        ("redis://h/0?ssl_ca_certs=/ca.pem", "needs a rediss://"),
        ("redis://h/0?prefix=%ff", "percent-encoding"),
        ("redis://h/0?prefix=app|", r"prefix 'app\|' contains '\|'"),
        ("redis://h/0?prefix=a%7Cb:", r"prefix 'a\|b:' contains '\|'"),
    ],
)
def test_invalid_redis_urls(url: str, message: str) -> None:
    with pytest.raises(InvalidStoreUrl, match=message) as caught:
        open_store(url)
    assert repr(url) in str(caught.value)


def test_store_does_not_connect_until_used() -> None:
    # Nothing listens on this port: opening still works, using fails cleanly.
    store = open_store("redis://:top-secret@127.0.0.1:1/0?connect_timeout=1")
    with pytest.raises(StoreError, match=r"127\.0\.0\.1:1/0: get failed: cannot connect") as caught:
        store.get("k")
    assert "top-secret" not in str(caught.value)
    store.close()


# -- data layout and interop ------------------------------------------------------


def test_layout_is_plain_redis(open_redis: OpenRedis, raw: Any) -> None:
    store = open_redis()
    p = store.prefix.encode() + b"|"
    store.set("hello", b"world")
    store.set("gone", b"x")
    store.delete("gone")
    assert raw.get(p + b"k:hello") == b"world"
    assert raw.type(p + b"k:hello") == b"string"
    assert raw.exists(p + b"k:gone") == 0
    assert raw.zrangebylex(p + b"index", b"-", b"+") == [b"hello"]
    assert set(raw.hkeys(p + b"versions")) == {b"hello"}
    seq = int(raw.get(p + b"seq"))
    # Versions start at Redis' clock in microseconds, not at 1.
    assert abs(seq / 1e6 - raw.time()[0]) < 60
    assert raw.zscore(p + b"tombstones", b"gone") == seq
    assert int(raw.hget(p + b"versions", b"hello")) == seq - 2
    assert {name[len(p) :] for name in raw.scan_iter(match=p + b"*")} == {
        b"k:hello",
        b"index",
        b"versions",
        b"tombstones",
        b"seq",
    }


def test_incrby_interop(open_redis: OpenRedis, raw: Any) -> None:
    store = open_redis()
    name = store.prefix.encode() + b"|k:hits"
    assert raw.incrby(name, 5) == 5  # created by redis-cli, not through wasikv
    assert store.get("hits") == b"5"
    assert store.increment("hits", 10) == 15
    assert raw.get(name) == b"15"
    assert raw.incrby(name, -20) == -5
    assert store.increment("hits", 1) == -4
    assert raw.get(name) == b"-4"
    # The store's increment indexed and versioned the key.
    assert store.list_keys(None, 10) == ["hits"]
    pinned = store.get_versioned("hits")
    assert pinned.value == b"-4" and pinned.version > 0
    store.increment("hits", 0)
    assert not store.swap("hits", pinned.version, b"0")
    # Values the store writes are INCRBY-able too.
    store.set("n", b"41")
    assert raw.incrby(store.prefix.encode() + b"|k:n", 1) == 42
    assert store.get("n") == b"42"


def test_increment_refusals_change_nothing(open_redis: OpenRedis, raw: Any) -> None:
    store = open_redis()
    store.set("text", b"12abc")
    pinned = store.get_versioned("text")
    with pytest.raises(StoreError, match="not a decimal integer: '12abc'"):
        store.increment("text", 1)
    assert store.get_versioned("text") == pinned
    raw.rpush(store.prefix.encode() + b"|k:list", b"x")
    with pytest.raises(StoreError, match="not a string"):
        store.increment("list", 1)
    with pytest.raises(StoreError, match="WRONGTYPE"):
        store.get("list")
    with pytest.raises(StoreError, match="not an s64 integer"):
        store.increment("n", 2**63)
    store.set("list", b"replaced")  # SET replaces a value of any type
    assert store.get("list") == b"replaced"


def test_keys_must_be_unicode(open_redis: OpenRedis) -> None:
    store = open_redis()
    with pytest.raises(StoreError, match="lone surrogate"):
        store.set("bad\udcff", b"v")
    with pytest.raises(StoreError, match="lone surrogate"):
        store.get("bad\udcff")
    store.set("\ud7ff", b"")
    store.set("\ue000", b"")
    # A surrogate cursor still sorts by code point.
    assert store.list_keys("\ud800", 10) == ["\ue000"]


def test_closed_store_refuses(open_redis: OpenRedis) -> None:
    store = open_redis()
    store.set("k", b"v")
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.get("k")


# -- prefixes ---------------------------------------------------------------------


def test_prefix_isolation(open_redis: OpenRedis) -> None:
    first, second = open_redis(), open_redis()
    first.set_many([("shared", b"first"), ("only-first", b"1"), ("n", b"10")])
    second.set_many([("shared", b"second"), ("only-second", b"2")])
    assert first.get("shared") == b"first"
    assert second.get("shared") == b"second"
    assert second.get("only-first") is None
    assert not second.exists("only-first")
    assert second.get_many(["only-first", "n"]) == [None, None]
    assert first.list_keys(None, 100) == ["n", "only-first", "shared"]
    assert second.list_keys(None, 100) == ["only-second", "shared"]
    second.delete("only-first")
    second.delete_many(["n", "shared"])
    assert first.get_many(["only-first", "n", "shared"]) == [b"1", b"10", b"first"]
    assert second.increment("n", 1) == 1
    assert first.get("n") == b"10"
    pinned = first.get_versioned("shared")
    second.set("shared", b"again")
    assert first.swap("shared", pinned.version, b"mine")


def test_label_isolation_through_urls() -> None:
    require_redis()
    app = uuid.uuid4().hex
    labels = [f"{app}", f"{app}:k", f"{app}%3Ak"]  # would collide if labels were not escaped
    stores = [open_store(SHARED_URL, label=label) for label in labels]
    other_app = open_store(f"{SHARED_URL}?prefix=wasikv-test:{app}-other:")
    try:
        for i, store in enumerate([*stores, other_app]):
            store.set_many([("k", str(i).encode()), ("m:seq", b"x"), (f"own{i}", b"")])
        for i, store in enumerate([*stores, other_app]):
            assert store.get("k") == str(i).encode()
            assert store.list_keys(None, 10) == ["k", "m:seq", f"own{i}"]
        stores[0].delete_many(["k", "own1", "own2", "own3"])
        assert [store.get("k") for store in stores[1:]] == [b"1", b"2"]
        assert other_app.list_keys(None, 10) == ["k", "m:seq", "own3"]
    finally:
        for store in [*stores, other_app]:
            assert isinstance(store, RedisStore)
            store.close()
            delete_prefix(store.prefix)


def test_prefix_with_the_separator_is_refused() -> None:
    with pytest.raises(ValueError, match=r"contains '\|'"):
        RedisStore(prefix="app|")
    store = open_store("redis://127.0.0.1/0", label="a|b")
    assert isinstance(store, RedisStore)
    assert (store.prefix, store.legacy_prefix) == ("wasikv:a%7Cb:", "wasikv:a|b:")
    store.close()


def test_nested_prefixes_cannot_reach_each_other(open_redis: OpenRedis, raw: Any) -> None:
    # Issue 10: "x" at app: read "y" at app:k: through keys "k:...", and broke
    # its writes by writing "index". Here each is its own host, so no start-up
    # check runs: the layout alone keeps them apart.
    base = unique_prefix()
    x, y = open_redis(base + "app:"), open_redis(base + "app:k:")
    y.set_many([("ysecret/1", b"s1"), ("n", b"5")])
    y.last_change()  # y's feed exists too
    y.save_position("watcher", 7)
    probes = ["k:ysecret/1", "k:k:ysecret/1", "|k:ysecret/1", "k:|k:ysecret/1", "k:n", "k:|k:n"]
    assert x.get_many(probes) == [None] * len(probes)
    assert not any(x.exists(key) for key in probes)
    assert x.list_keys(None, 100) == []
    names = ["index", "seq", "versions", "tombstones", "watermark", "changes", "positions"]
    hostile = [*names, *(f"k:{n}" for n in names), *(f"k:|{n}" for n in names), "k:|k:n", "k:k:n"]
    x.set_many([(key, b"junk") for key in hostile])
    x.delete_many(["k:|k:ysecret/1", "k:k:ysecret/1"])
    x.increment("k:|k:count", 1)
    # y is untouched and every operation still works.
    assert y.get_many(["ysecret/1", "n"]) == [b"s1", b"5"]
    assert y.list_keys(None, 100) == ["n", "ysecret/1"]
    assert y.increment("n", 1) == 6
    pinned = y.get_versioned("ysecret/1")
    assert y.swap("ysecret/1", pinned.version, b"s2")
    y.delete("n")
    assert y.changes(0, 100)[-2:][0].key == "ysecret/1"
    assert y.load_position("watcher") == 7
    # And the other way round: nothing y writes shows up in x.
    assert x.list_keys(None, 100) == sorted([*hostile, "k:|k:count"])
    assert y.get_many(hostile) == [None] * len(hostile)
    for name in raw.scan_iter(match=base.encode() + b"*"):
        assert name.startswith((base.encode() + b"app:|", base.encode() + b"app:k:|")), name


def host_with(stores: dict[str, Any]) -> Any:
    from wasikv import Host

    return Host(stores, cache_dir=None, compile_cache=False)


@pytest.mark.parametrize(
    ("first", "second", "relation"),
    [
        (f"{SHARED_URL}?prefix=app:", f"{SHARED_URL}?prefix=app:k:", "nest"),
        (f"{SHARED_URL}?prefix=app:k:", f"{SHARED_URL}?prefix=app:", "nest"),
        (f"{SHARED_URL}?prefix=app:", f"{SHARED_URL}?prefix=app:", "are equal"),
        (
            f"redis://localhost:{REDIS_PORT}/{TEST_DB}?prefix=wasikv:",
            f"redis://[::1]:{REDIS_PORT}/{TEST_DB}",
            "nest",
        ),
    ],
)
def test_overlapping_prefixes_are_a_config_error(first: str, second: str, relation: str) -> None:
    from wasikv.errors import ConfigError

    with pytest.raises(ConfigError, match=relation) as caught:
        host_with({"x": first, "y": second})
    message = str(caught.value)
    x_prefix, y_prefix = (
        RedisStore.from_url(url, label=label).prefix for url, label in ((first, "x"), (second, "y"))
    )
    assert "'x'" in message and "'y'" in message
    assert repr(x_prefix) in message and repr(y_prefix) in message


def test_disjoint_prefixes_and_other_databases_are_fine() -> None:
    host = host_with(
        {
            "x": f"{SHARED_URL}?prefix=app:",
            "y": f"{SHARED_URL}?prefix=app2:",
            "z": f"redis://{REDIS_HOST}:{REDIS_PORT}/{TEST_DB - 1}?prefix=app:",
            "w": f"redis://{REDIS_HOST}:6380/{TEST_DB}?prefix=app:",
            "d1": SHARED_URL,
            "d2": SHARED_URL,  # default prefixes: wasikv:d1:, wasikv:d2:
            "m": "memory:",
        }
    )
    store = RedisStore(prefix="shared:")
    host.add_store("alias1", store)
    host.add_store("alias2", store)  # one store object under two labels is an alias
    from wasikv.errors import ConfigError

    with pytest.raises(ConfigError, match="'alias1' and 'other'"):
        host.add_store("other", RedisStore(prefix="shared:more:"))
    host.close()
    store.close()


def test_wasikv_up_refuses_overlapping_prefixes(tmp_path: Path) -> None:
    (tmp_path / "app.wasm").write_bytes(b"\0asm")  # never loaded: the stores come first
    (tmp_path / "wasikv.toml").write_text(
        'spin_manifest_version = 2\n\n[application]\nname = "prefixes"\n\n'
        '[[trigger.http]]\nroute = "/..."\ncomponent = "app"\n\n'
        '[component.app]\nsource = "app.wasm"\nkey_value_stores = ["x"]\n'
    )
    (tmp_path / "runtime-config.toml").write_text(
        f'[key_value_store.x]\ntype = "redis"\nurl = "{SHARED_URL}?prefix=app:"\n\n'
        f'[key_value_store.y]\ntype = "redis"\nurl = "{SHARED_URL}?prefix=app:k:"\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "wasikv", "up", "--listen", "127.0.0.1:1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: store labels 'x' and 'y'"), done.stderr
    assert "'app:'" in lines[0] and "'app:k:'" in lines[0]


# -- the old layout (no separator) and its migration --------------------------------


def write_old_layout(raw: Any, prefix: str) -> None:
    """A store as wasikv wrote it before the separator: ``P seq``, ``P k:{key}``, ..."""
    p = prefix.encode()
    raw.set(p + b"seq", b"1000000010")
    raw.hset(p + b"versions", mapping={b"a": 1000000001, b"n": 1000000002, b"b|c": 1000000003})
    raw.zadd(p + b"index", {b"a": 0, b"n": 0, b"b|c": 0})
    raw.mset({p + b"k:a": b"alpha", p + b"k:n": b"41", p + b"k:b|c": b"pipe", p + b"k:raw": b"r"})
    raw.zadd(p + b"tombstones", {b"gone": 1000000004})
    raw.set(p + b"watermark", b"1000000000")
    raw.xadd(p + b"changes", {b"start": b"1"}, id=b"1000000000-0")
    raw.xadd(p + b"changes", {b"k": b"a", b"v": b"alpha"}, id=b"1000000001-0")


def test_old_layout_is_refused_until_migrated(open_redis: OpenRedis, raw: Any) -> None:
    from wasikv.stores.redis import migrate_layout

    store = open_redis()
    write_old_layout(raw, store.prefix)
    for operation in (lambda: store.get("a"), lambda: store.list_keys(None, 10), lambda: store.set("a", b"")):
        with pytest.raises(StoreError, match="old layout") as caught:
            operation()
        message = str(caught.value)
        assert repr(store.prefix) in message
        assert "wasikv kv migrate-redis --store 'redis://127.0.0.1:6379/15?prefix=" in message
    assert raw.get(store.prefix.encode() + b"k:a") == b"alpha"  # nothing was written

    done = migrate_layout(store)
    assert done.moved == 4 + 6  # values a, n, b|c, raw; seq, versions, index, tombstones, watermark, changes
    assert done.left == ()
    p = store.prefix.encode()
    assert all(name.startswith(p + b"|") for name in raw.scan_iter(match=p + b"*"))
    # The same store object works now, with versions, tombstones and the feed intact.
    assert store.get_many(["a", "b|c", "raw"]) == [b"alpha", b"pipe", b"r"]
    assert store.list_keys(None, 10) == ["a", "b|c", "n"]
    assert store.get_versioned("a").version == 1000000001
    assert not store.swap("a", 1000000000, b"stale")
    assert store.swap("a", 1000000001, b"beta")
    assert store.get_versioned("a").version == 1000000011  # the sequence carried on
    assert not store.swap("gone", 1000000003, b"x")
    assert store.swap("gone", 1000000004, b"back")
    assert store.increment("n", 1) == 42
    assert [change.key for change in store.changes(1000000000, 10)] == ["a", "a", "gone", "n"]
    # Safe to run again: nothing left to do.
    assert migrate_layout(store).moved == 0


def test_migrate_redis_command(open_redis: OpenRedis, raw: Any) -> None:
    store = open_redis()
    write_old_layout(raw, store.prefix)
    with pytest.raises(StoreError, match="migrate-redis") as caught:
        store.get("a")
    arguments = str(caught.value).split("wasikv kv migrate-redis ")[1].split("`")[0]
    command = [sys.executable, "-m", "wasikv", "kv", "migrate-redis", *shlex.split(arguments)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"prefix {store.prefix!r}: moved 10 Redis keys" in done.stdout
    assert store.get("a") == b"alpha"
    again = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert "nothing to migrate" in again.stdout
    wrong = subprocess.run([*command[:5], "--store", "memory:"], capture_output=True, text=True, timeout=120)
    assert wrong.returncode == 2 and "redis://" in wrong.stderr


def test_old_layout_of_a_label_with_the_separator() -> None:
    require_redis()
    from wasikv.stores.redis import migrate_layout

    label = f"wasikv-test-{uuid.uuid4().hex}|x"
    store = open_store(SHARED_URL, label=label)
    assert isinstance(store, RedisStore)
    raw = raw_client()
    try:
        write_old_layout(raw, store.legacy_prefix)
        with pytest.raises(StoreError, match=re.escape(f"--label '{label}'")):
            store.get("a")
        assert migrate_layout(store).moved == 10
        assert store.get("a") == b"alpha"
        assert raw.exists(store.prefix.encode() + b"|seq") == 1
    finally:
        store.close()
        raw.close()
        delete_prefix(store.prefix)
        delete_prefix(store.legacy_prefix)


def test_migration_refusals(open_redis: OpenRedis, raw: Any) -> None:
    from wasikv.stores.redis import migrate_layout

    # Data in both layouts: an old process wrote after the migration.
    both = open_redis()
    both.set("new", b"1")
    write_old_layout(raw, both.prefix)
    fresh = open_redis(both.prefix)  # checks the layout on its first operation
    with pytest.raises(StoreError, match="both the old layout of wasikv"):
        fresh.get("new")
    with pytest.raises(StoreError, match="both layouts hold data"):
        migrate_layout(fresh)

    # A key in both layouts: the others move, the sequence stays, stores keep refusing.
    clash = open_redis()
    write_old_layout(raw, clash.prefix)
    raw.set(clash.prefix.encode() + b"|k:a", b"new a")
    with pytest.raises(StoreError, match="1 keys exist in both layouts"):
        migrate_layout(clash)
    assert raw.exists(clash.prefix.encode() + b"seq") == 1
    with pytest.raises(StoreError, match="old layout"):
        clash.get("n")
    raw.delete(clash.prefix.encode() + b"|k:a")
    assert migrate_layout(clash).moved == 2  # k:a and seq
    assert clash.get("a") == b"alpha"


def test_migrating_nested_old_layouts(open_redis: OpenRedis, raw: Any) -> None:
    from wasikv.stores.redis import migrate_layout

    base = unique_prefix()
    outer, inner = open_redis(base + "app:"), open_redis(base + "app:k:")
    write_old_layout(raw, inner.prefix)
    raw.set(outer.prefix.encode() + b"seq", b"5")
    raw.set(outer.prefix.encode() + b"k:other", b"o")
    with pytest.raises(StoreError, match=f"migrate '{base}app:k:' first"):
        migrate_layout(outer)
    assert migrate_layout(inner).moved == 10
    done = migrate_layout(outer)
    assert done.moved == 2  # k:other and seq; inner's new keys (with "|") stay
    assert done.left and all("|" in key for key in done.left)
    assert outer.get("other") == b"o"
    assert inner.get_many(["a", "b|c"]) == [b"alpha", b"pipe"]
    assert inner.list_keys(None, 10) == ["a", "b|c", "n"]


# -- change-feed positions ------------------------------------------------------------


def test_positions_round_trip(open_redis: OpenRedis, raw: Any) -> None:
    store = open_redis()
    assert RedisStore.keeps_positions
    assert store.load_position("watch:orders") is None
    start = store.last_change()
    store.save_position("watch:orders", 5)
    store.save_position("wätch 😀", 2**63 - 1)
    assert store.load_position("watch:orders") == 5
    store.save_position("watch:orders", 0)
    assert store.load_position("watch:orders") == 0
    assert store.load_position("wätch 😀") == 2**63 - 1
    # Outside the keyspace and the feed; kept by any store object on the prefix.
    assert store.list_keys(None, 10) == [] and store.get("watch:orders") is None
    assert store.last_change() == start and store.changes(0, 10) == []
    assert raw.hgetall(store.prefix.encode() + b"|positions") == {
        b"watch:orders": b"0",
        "wätch 😀".encode(): str(2**63 - 1).encode(),
    }
    assert open_redis(store.prefix).load_position("watch:orders") == 0
    for bad in (-1, 2**63, "5", 1.0, True):
        with pytest.raises(StoreError, match="must be an int"):
            store.save_position("w", bad)  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="must be str"):
        store.load_position(b"w")  # type: ignore[arg-type]
    raw.hset(store.prefix.encode() + b"|positions", b"junk", b"x")
    with pytest.raises(CorruptPosition, match="'junk' holds the text 'x', not a change number"):
        store.load_position("junk")
    raw.hset(store.prefix.encode() + b"|positions", b"junk", b" 7")  # int() would take it
    with pytest.raises(CorruptPosition, match="holds the text ' 7'"):
        store.load_position("junk")


# -- listing ----------------------------------------------------------------------


def test_exactly_once_listing_of_2500_keys(open_redis: OpenRedis, raw: Any) -> None:
    store = open_redis()
    keys = [f"{chr(0x61 + i % 26)}{chr(0x3B1 + i % 20)}{i}😀" for i in range(2500)]
    order = sorted(range(2500), key=lambda i: (i * 7919) % 2500)
    for start in range(0, 2500, 500):
        store.set_many([(keys[i], b"v") for i in order[start : start + 500]])
    seen: list[str] = []
    after: str | None = None
    while page := store.list_keys(after, 99):
        seen.extend(page)
        after = page[-1]
    assert seen == sorted(keys)
    assert len(set(seen)) == 2500
    # SCAN over the same keys may repeat some; the index never does.
    assert raw.zcard(store.prefix.encode() + b"|index") == 2500


def test_walk_never_misses_stable_keys_under_churn(open_redis: OpenRedis) -> None:
    store = open_redis()
    stable = [f"stable-{i:04d}" for i in range(1500)]
    store.set_many([(key, b"") for key in stable])
    stop = threading.Event()

    def churn() -> None:
        i = 0
        while not stop.is_set():
            store.set(f"stable-{i % 1500:04d}-churn", b"")
            store.delete(f"stable-{(i + 700) % 1500:04d}-churn")
            i += 1

    writer = threading.Thread(target=churn)
    writer.start()
    try:
        seen: list[str] = []
        after: str | None = None
        while page := store.list_keys(after, 50):
            seen.extend(page)
            after = page[-1]
    finally:
        stop.set()
        writer.join()
    assert len(seen) == len(set(seen))
    assert [key for key in seen if not key.endswith("-churn")] == stable


def test_tombstones_stay_bounded(open_redis: OpenRedis, raw: Any) -> None:
    store = open_redis(tombstone_window=50)
    for i in range(1000):
        store.set(f"k{i}", b"v")
        store.delete(f"k{i}")
    p = store.prefix.encode() + b"|"
    assert 0 < raw.zcard(p + b"tombstones") <= 60
    assert int(raw.get(p + b"watermark")) > int(raw.get(p + b"seq")) - 200
    assert raw.hlen(p + b"versions") == 0
    assert raw.zcard(p + b"index") == 0


# -- several processes -----------------------------------------------------------

_CONTENDER = """
import json, os, sys, time
from wasikv.stores.redis import RedisStore

port, db, prefix, mode, count, go = sys.argv[1:]
store = RedisStore("127.0.0.1", int(port), int(db), prefix=prefix, socket_timeout=30)
store.get("warm-up")  # connect before the race starts
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.002)
retries = 0
for _ in range(int(count)):
    if mode == "increment":
        store.increment("n", 1)
        continue
    while True:
        current = store.get_versioned("n")
        number = int(current.value) if current.value is not None else 0
        if store.swap("n", current.version, str(number + 1).encode()):
            break
        retries += 1
store.close()
print(json.dumps({"retries": retries}), flush=True)
"""


def run_contenders(prefix: str, tmp_path: Path, mode: str, processes: int, count: int) -> list[int]:
    """Start `processes` children doing `count` increments or CAS loops at once; their retries."""
    go = tmp_path / f"go-{mode}"
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _CONTENDER,
                str(REDIS_PORT),
                str(TEST_DB),
                prefix,
                mode,
                str(count),
                str(go),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    retries: list[int] = []
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        go.touch()
        for child in children:
            out, _ = child.communicate(timeout=120)
            assert child.returncode == 0
            retries.append(json.loads(out.strip().splitlines()[-1])["retries"])
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    return retries


@pytest.mark.slow
def test_processes_increment_one_key(open_redis: OpenRedis, tmp_path: Path) -> None:
    store = open_redis()
    run_contenders(store.prefix, tmp_path, "increment", processes=4, count=250)
    assert store.get("n") == b"1000"


@pytest.mark.slow
def test_processes_cas_loops(
    open_redis: OpenRedis, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    store = open_redis()
    retries = run_contenders(store.prefix, tmp_path, "cas", processes=4, count=250)
    assert store.get("n") == b"1000"
    # In the JUnit report (--junitxml), not among pytest's dots.
    record_property("cas_retries_per_process", retries)


# -- failures (a private redis-server per test) ----------------------------------


def every_operation(store: RedisStore) -> dict[str, Callable[[], object]]:
    return {
        "get": lambda: store.get("k"),
        "get_versioned": lambda: store.get_versioned("k"),
        "exists": lambda: store.exists("k"),
        "list_keys": lambda: store.list_keys(None, 10),
        "get_many": lambda: store.get_many(["k", "n"]),
        "set": lambda: store.set("k", b"v"),
        "delete": lambda: store.delete("k"),
        "increment": lambda: store.increment("n", 1),
        "swap": lambda: store.swap("k", 1, b"v"),
        "set_many": lambda: store.set_many([("k", b"v")]),
        "delete_many": lambda: store.delete_many(["k"]),
    }


@pytest.mark.slow
def test_server_down_then_back(server: RedisServer) -> None:
    store = private_store(server, socket_timeout=2, connect_timeout=2)
    store.set("k", b"before")
    assert store.increment("n", 1) == 1
    server.stop()
    for name, operation in every_operation(store).items():
        started = time.monotonic()
        with pytest.raises(StoreError) as caught:
            operation()
        message = str(caught.value)
        assert f"redis store at {server.address}/0: " in message, name
        assert "cannot connect to Redis" in message and "refused" in message, message
        assert time.monotonic() - started < 1.5, name
    server.start()  # same port; this server keeps no data across restarts
    assert store.get("k") is None
    store.set("k", b"after")
    assert store.get("k") == b"after"
    assert store.increment("n", 1) == 1
    store.close()


@pytest.mark.slow
def test_pins_from_before_a_data_loss_conflict(server: RedisServer) -> None:
    store = private_store(server)
    store.set("k", b"A")
    live = store.get_versioned("k")
    absent = store.get_versioned("never")
    server.restart()  # no persistence: Redis comes back empty
    store.set("k", b"A")
    assert not store.swap("k", live.version, b"stale")
    store.delete("never")
    assert not store.swap("never", absent.version, b"stale")
    assert store.get_many(["k", "never"]) == [b"A", None]
    store.close()


@pytest.mark.slow
def test_restart_reuses_no_dead_connections(server: RedisServer) -> None:
    store = private_store(server, max_connections=8)
    barrier = threading.Barrier(8)

    def use() -> None:
        barrier.wait()
        for i in range(20):
            store.set(f"k{i}", b"v")

    threads = [threading.Thread(target=use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    server.restart()
    # The pool holds connections the old server closed; none of them fails a call.
    for operation in every_operation(store).values():
        operation()
    store.close()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["shutdown", "crash"])
def test_restart_mid_run_reports_nothing_unapplied(tmp_path: Path, sig: int) -> None:
    # Persist every write before it is acknowledged, so restarts keep the counter.
    with RedisServer(tmp_path / "redis", "--appendonly", "yes", "--appendfsync", "always") as server:
        store = private_store(server, socket_timeout=2, connect_timeout=2)
        done, failed = 0, 0
        errors: list[str] = []
        stop = threading.Event()

        def work() -> None:
            nonlocal done, failed
            while not stop.is_set():
                try:
                    store.increment("n", 1)
                    done += 1
                except StoreError as exc:
                    failed += 1
                    errors.append(str(exc))
                    time.sleep(0.01)

        worker = threading.Thread(target=work)
        worker.start()
        try:
            deadline = time.monotonic() + 30
            while done < 200 and time.monotonic() < deadline:
                time.sleep(0.005)
            assert done >= 200, errors[:3]
            server.stop(sig)
            time.sleep(0.3)
            server.start()
            target = done + 200
            deadline = time.monotonic() + 30
            while done < target and time.monotonic() < deadline:
                time.sleep(0.005)
        finally:
            stop.set()
            worker.join()
        final = int(store.get("n") or b"0")
        # Every reported increment is in Redis; only failed calls may or may not be.
        assert done <= final <= done + failed
        assert failed > 0
        assert all(f"redis store at {server.address}/0: increment failed: " in e for e in errors)
        store.close()


@pytest.mark.slow
def test_frozen_server_times_out(server: RedisServer) -> None:
    store = private_store(server, socket_timeout=0.5, connect_timeout=0.5)
    assert store.increment("n", 1) == 1
    server.freeze()
    try:
        # The pooled connection is established: the script is sent, no reply comes.
        started = time.monotonic()
        with pytest.raises(StoreError, match="may or may not have been applied") as caught:
            store.increment("n", 1)
        assert time.monotonic() - started < 1.5
        assert f"{server.address}/0: increment failed: Redis did not answer within 0.5s" in str(caught.value)
        # A new connection: the kernel accepts it, the handshake gets no answer.
        started = time.monotonic()
        with pytest.raises(StoreError, match=r"get failed: Redis did not answer within 0\.5s"):
            store.get("n")
        assert time.monotonic() - started < 1.5
    finally:
        server.thaw()
    # The same store works again, and the timed-out increment, which was in
    # Redis' socket buffer when it froze, ran exactly once: it was not resent.
    deadline = time.monotonic() + 5
    while store.get("n") != b"2" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.get("n") == b"2"
    assert store.increment("n", 1) == 3
    store.close()


@pytest.mark.slow
def test_read_only_replica(tmp_path: Path) -> None:
    with (
        RedisServer(tmp_path / "primary", "--repl-diskless-sync-delay", "0") as server,
        RedisServer(tmp_path / "replica", "--replicaof", REDIS_HOST, str(server.port)) as replica_server,
    ):
        primary, replica = private_store(server), private_store(replica_server)
        primary.set("k", b"v")
        deadline = time.monotonic() + 10
        while replica.get("k") != b"v" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert replica.get("k") == b"v"
        # Reads, including the read-only version script, work on a replica.
        assert replica.get_versioned("k") == primary.get_versioned("k")
        assert replica.list_keys(None, 10) == ["k"]
        for write in (lambda: replica.set("k", b"w"), lambda: replica.increment("n", 1)):
            with pytest.raises(StoreError, match="read-only replica") as caught:
                write()
            assert replica_server.address in str(caught.value)
        replica.close()
        primary.close()


@pytest.mark.slow
def test_password(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "redis", "--requirepass", "s3cret-pw") as server:
        store = open_store(f"redis://:s3cret-pw@{server.address}/0?prefix=t:")
        store.set("k", b"v")
        assert store.get("k") == b"v"
        store.close()
        for url in (f"redis://:wrong-pw@{server.address}/0", f"redis://{server.address}/0"):
            store = open_store(url)
            with pytest.raises(StoreError, match="authentication") as caught:
                store.get("k")
            assert "pw" not in str(caught.value)
            store.close()


@pytest.mark.slow
def test_script_cache_flushed(server: RedisServer) -> None:
    store = private_store(server)
    store.set("k", b"1")
    client = raw_client(server.port, 0)
    client.script_flush()
    client.close()
    assert store.swap("k", store.get_versioned("k").version, b"2")
    assert store.increment("n", 1) == 1
    store.close()


@pytest.mark.slow
def test_one_pool_not_a_connection_per_call(server: RedisServer) -> None:
    store = private_store(server, max_connections=3)
    client = raw_client(server.port, 0)

    def wasikv_connections() -> int:
        return sum(1 for entry in client.client_list() if entry.get("name") == "wasikv")

    for i in range(300):
        store.set(f"k{i}", b"v")
        store.get(f"k{i}")
    assert wasikv_connections() == 1
    barrier = threading.Barrier(12)

    def use() -> None:
        barrier.wait()
        for _ in range(100):
            store.increment("n", 1)

    threads = [threading.Thread(target=use) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Twelve threads waited their turn on three connections.
    assert store.get("n") == b"1200"
    assert wasikv_connections() <= 3
    store.close()
    deadline = time.monotonic() + 5
    while wasikv_connections() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert wasikv_connections() == 0
    client.close()


@pytest.mark.slow
def test_out_of_memory_refuses_whole_batch(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "redis", "--maxmemory", "3mb", "--maxmemory-policy", "noeviction") as server:
        store = private_store(server)
        with pytest.raises(StoreError, match="OOM"):
            for i in range(1000):
                store.set(f"fill{i}", b"x" * 100_000)
        pinned = store.get_versioned("fill0")
        # Write scripts are refused before they start: no half-applied batch.
        # (The batch is as big as the refused write: its own arguments count.)
        with pytest.raises(StoreError, match=f"{server.address}/0: set failed: Redis is out of memory"):
            store.set_many([("fill0", b"y" * 100_000), ("new", b"y" * 100_000)])
        assert store.get_versioned("fill0") == pinned
        assert store.get("new") is None
        # Deletes still run, as DEL does: they are how one gets out of OOM.
        store.delete_many([f"fill{i}" for i in range(10)])
        store.set_many([("fill0", b"small"), ("new", b"small")])
        assert store.get_many(["fill0", "new"]) == [b"small", b"small"]
        store.close()


@pytest.mark.slow
def test_tls(tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path / "tls")
    with RedisServer(tmp_path / "redis", tls=(cert, key)) as server:
        store = open_store(f"rediss://{server.address}/0?prefix=t:&ssl_ca_certs={cert}")
        assert isinstance(store, RedisStore) and store.tls
        store.set("k", b"over tls")
        assert store.increment("n", 2) == 2
        assert store.get_many(["k", "n"]) == [b"over tls", b"2"]
        store.close()
        # Without the CA the certificate is not trusted; plain text is not TLS.
        for url in (
            f"rediss://{server.address}/0?connect_timeout=2",
            f"redis://{server.address}/0?socket_timeout=2",
        ):
            store = open_store(url)
            with pytest.raises(StoreError, match=server.address):
                store.get("k")
            store.close()
