"""Several `wasikv up` hosts of examples/watch-audit on one store: each change is audited once.

Real processes on the real stores (the shared Redis and PostgreSQL, a SQLite
file in a temporary directory, and private servers for the outages). The
app watches three prefixes (`notes/`, `a/`, `b/`), so the three leases can
spread over three hosts. Times are measured and printed, never asserted
beyond the lease time plus a generous margin.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import pytest

from wasikv import Host
from wasikv.stores.postgres import default_table

from .postgres_support import PostgresServer, drop_schema, postgres_url, raw_connection, require_postgres
from .postgres_support import unique_schema as unique_pg_schema
from .redis_support import (
    REDIS_HOST,
    REDIS_PORT,
    TEST_DB,
    RedisServer,
    delete_prefix,
    raw_client,
    require_redis,
    unique_prefix,
)
from .support import COMPILE_CACHE, ROOT, guest_wasm

pytestmark = pytest.mark.slow

EXAMPLE = ROOT / "examples" / "watch-audit"
#: The lease time the hosts run with (`--watch-lease`): short, so that takeovers are quick.
LEASE = 2.0
#: The changes a takeover may deliver again: the one batch the dead host claimed.
BATCH = 64
TIMEOUT = 120.0
PREFIXES = ("notes/", "a/", "b/")
MORE_TRIGGERS = "".join(
    f'\n[[trigger.key-value]]\nstore = "default"\nprefix = "{prefix}"\ncomponent = "audit"\n'
    for prefix in PREFIXES[1:]
)


@dataclass
class Backend:
    """Where the hosts keep `default` (watched) and `audit`, and how to see who holds each lease."""

    name: str
    config: str
    default_url: str
    audit_url: str
    holders: Callable[[], dict[str, int]]


@pytest.fixture(scope="module")
def built() -> dict[str, Path]:
    return {
        "notes": guest_wasm("examples/watch-audit", "wasikv:app/http-trigger", module="notes"),
        "audit": guest_wasm("examples/watch-audit", "wasikv:app/watch-trigger", module="audit"),
    }


def _pid(holder: str) -> int:
    return int(holder.split("/")[1])


def redis_backend(prefix: str, address: str = f"{REDIS_HOST}:{REDIS_PORT}", db: int = TEST_DB) -> Backend:
    default = f"redis://{address}/{db}?prefix={prefix}-d&socket_timeout=1&connect_timeout=1"
    audit = f"redis://{address}/{db}?prefix={prefix}-a&socket_timeout=1&connect_timeout=1"
    port = int(address.rsplit(":", 1)[1])

    def holders() -> dict[str, int]:
        client = raw_client(port=port, db=db)
        found = {}
        for name, record in client.hgetall(f"{prefix}-d|leases".encode()).items():
            holder = record.decode().split(" ", 2)[2]
            # A released lease keeps its token but no holder; it may be taken
            # again between the two reads, so an empty holder counts as nobody.
            if holder and client.exists(f"{prefix}-d|lease:".encode() + name):
                found[name.decode()] = _pid(holder)
        return found

    config = (
        f'[key_value_store.default]\ntype = "redis"\nurl = "{default}"\n'
        f'[key_value_store.audit]\ntype = "redis"\nurl = "{audit}"\n'
    )
    return Backend("redis", config, default, audit, holders)


def postgres_backend(schema: str, port: int = 5432, dbname: str = "test") -> Backend:
    default = postgres_url(schema, port=port, dbname=dbname, connect_timeout=1)
    audit = default  # another label: another table in the same schema

    def holders() -> dict[str, int]:
        with raw_connection(port=port, dbname=dbname) as conn:
            rows = conn.execute(
                f'SELECT name, holder FROM "{schema}"."{default_table("default")}__leases" '
                "WHERE expires > clock_timestamp()"
            ).fetchall()
        return {bytes(name).decode(): _pid(holder) for name, holder in rows}

    config = (
        f'[key_value_store.default]\ntype = "postgres"\nurl = "{default}"\n'
        f'[key_value_store.audit]\ntype = "postgres"\nurl = "{audit}"\n'
    )
    return Backend("postgres", config, default, audit, holders)


def sqlite_backend(directory: Path) -> Backend:
    default, audit = directory / "default.db", directory / "audit.db"

    def holders() -> dict[str, int]:
        with sqlite3.connect(default) as conn:
            rows = conn.execute("SELECT name, holder FROM watch_leases WHERE expires > ?", (time.time(),))
            return {name: _pid(holder) for name, holder in rows}

    config = (
        f'[key_value_store.default]\ntype = "sqlite"\npath = "{default}"\n'
        f'[key_value_store.audit]\ntype = "sqlite"\npath = "{audit}"\n'
    )
    return Backend("sqlite", config, f"sqlite:{default}", f"sqlite:{audit}", holders)


@pytest.fixture(params=["redis", "postgres", "sqlite"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "redis":
        require_redis()
        prefix = unique_prefix()
        yield redis_backend(prefix)
        delete_prefix(prefix + "-d")
        delete_prefix(prefix + "-a")
    elif request.param == "postgres":
        require_postgres()
        schema = unique_pg_schema()
        yield postgres_backend(schema)
        drop_schema(schema)
    else:
        yield sqlite_backend(tmp_path)


class Hosts:
    """`wasikv up` processes of one app, each in a directory of its own (a host), logging to files."""

    def __init__(self, root: Path, built: dict[str, Path], backend: Backend) -> None:
        self.root = root
        self.built = built
        self.backend = backend
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.ports: dict[int, tuple[int, int]] = {}
        self._logs: list[IO[bytes]] = []

    def directory(self, index: int) -> Path:
        path = self.root / f"host{index}"
        if not path.exists():
            path.mkdir(parents=True)
            manifest = (EXAMPLE / "wasikv.toml").read_text() + MORE_TRIGGERS
            (path / "wasikv.toml").write_text(manifest)
            (path / "runtime-config.toml").write_text(self.backend.config)
            for module, wasm in self.built.items():
                shutil.copy(wasm, path / f"{module}.wasm")
        return path

    def start(self, index: int) -> None:
        cwd = self.directory(index)
        ports = self.ports.setdefault(index, (_free_port(), _free_port()))
        log = open(cwd / f"log-{len(self._logs)}.txt", "wb")  # closed in stop_all
        self._logs.append(log)
        command = [sys.executable, "-m", "wasikv", "up", "--listen", f"127.0.0.1:{ports[0]}"]
        command += ["--metrics", f"127.0.0.1:{ports[1]}", "--watch-lease", str(LEASE)]
        env = {**os.environ, "WASIKV_CACHE_DIR": str(COMPILE_CACHE)}
        self.processes[index] = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=log)

    def wait_ready(self, index: int) -> None:
        deadline = time.monotonic() + 240
        while True:
            try:
                httpx.get(self.url(index, "/"), timeout=1)
                return
            except httpx.TransportError:
                assert self.processes[index].poll() is None, self.log(index)
                assert time.monotonic() < deadline, self.log(index)
                time.sleep(0.1)

    def url(self, index: int, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[index][0]}{path}"

    def pid(self, index: int) -> int:
        return self.processes[index].pid

    def log(self, index: int) -> str:
        return "".join(
            path.read_text(errors="replace") for path in sorted(self.directory(index).glob("log-*"))
        )

    def metric(self, index: int, name: str) -> float:
        text = httpx.get(f"http://127.0.0.1:{self.ports[index][1]}/metrics", timeout=10).text
        return sum(float(value) for value in re.findall(rf"^{name}\{{[^}}]*\}} (\S+)$", text, re.MULTILINE))

    def kill(self, index: int) -> None:
        self.processes[index].send_signal(signal.SIGKILL)
        self.processes[index].wait()

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in self._logs:
            log.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def hosts(tmp_path: Path, built: dict[str, Path], backend: Backend) -> Iterator[Hosts]:
    group = Hosts(tmp_path / "hosts", built, backend)
    yield group
    group.stop_all()


def audited(host: Host) -> Counter[str]:
    """How many audit entries each key has."""
    audit = host.bucket("audit")
    keys = list(audit.keys("entry/"))
    counts: Counter[str] = Counter()
    for start in range(0, len(keys), 100):
        values = audit.get_many(keys[start : start + 100]).values()
        counts.update(json.loads(value or b"null")["key"] for value in values)
    return counts


def wait_audited(host: Host, keys: set[str], timeout: float = TIMEOUT) -> Counter[str]:
    """The audit counts once every key in `keys` has an entry (and a moment after, for late copies)."""
    deadline = time.monotonic() + timeout
    while True:
        counts = audited(host)
        if keys <= counts.keys():
            time.sleep(LEASE)
            return audited(host)
        assert time.monotonic() < deadline, f"{len(keys - counts.keys())} of {len(keys)} keys never audited"
        time.sleep(0.2)


def wait_spread(hosts: Hosts, backend: Backend, pids: set[int]) -> float:
    """Seconds until each of the three leases is held by another of `pids`."""
    started = time.monotonic()
    while True:
        held = backend.holders()
        if len(held) == len(PREFIXES) and set(held.values()) == pids:
            return time.monotonic() - started
        assert time.monotonic() - started < TIMEOUT, f"leases never spread: {held} over {pids}"
        time.sleep(0.1)


def holder_of(backend: Backend, prefix: str) -> int | None:
    for name, pid in backend.holders().items():
        if json.loads(name)[2] == prefix:
            return pid
    return None


def takeover_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "took over from" in line]


def test_three_hosts_audit_a_thousand_writes_once(hosts: Hosts, backend: Backend) -> None:
    for index in range(3):
        hosts.start(index)
    for index in range(3):
        hosts.wait_ready(index)
    seconds = wait_spread(hosts, backend, {hosts.pid(index) for index in range(3)})
    print(f"[{backend.name}] three leases spread over three hosts in {seconds:.1f}s")

    keys: set[str] = set()
    with Host({"default": backend.default_url, "audit": backend.audit_url}, compile_cache=False) as client:
        writer = client.bucket("default")
        with httpx.Client(timeout=30) as http:
            for number in range(1000):
                prefix = PREFIXES[number % 3]
                if prefix == "notes/":  # through the hosts' HTTP trigger, round robin
                    response = http.put(hosts.url(number % 3, f"/notes/n{number}"), content=b"x")
                    assert response.status_code == 204
                else:  # from outside, as `wasikv kv` would
                    writer.set(f"{prefix}n{number}", b"x")
                keys.add(f"{prefix}n{number}")
        counts = wait_audited(client, keys)

    assert set(counts) == keys
    assert sum(counts.values()) == 1000, [key for key, count in counts.items() if count > 1]
    # No host died: spreading handed leases over (released, not taken over), and nothing was
    # delivered again.
    assert sum(hosts.metric(index, "wasikv_watch_takeovers_total") for index in range(3)) == 0
    assert sum(hosts.metric(index, "wasikv_watch_redelivered_changes_total") for index in range(3)) == 0
    for index in range(3):
        assert not [line for line in takeover_lines(hosts.log(index)) if "delivered again" in line]


def test_kill_9_of_the_delivering_host_misses_nothing(hosts: Hosts, backend: Backend) -> None:
    for index in range(3):
        hosts.start(index)
    for index in range(3):
        hosts.wait_ready(index)
    wait_spread(hosts, backend, {hosts.pid(index) for index in range(3)})
    delivering = holder_of(backend, "notes/")
    victim = next(index for index in range(3) if hosts.pid(index) == delivering)

    keys = {f"notes/k{number}" for number in range(600)}
    with Host({"default": backend.default_url, "audit": backend.audit_url}, compile_cache=False) as client:
        writer = client.bucket("default")

        def write() -> None:
            # In bursts, so that batches are long and the kill likely lands inside one.
            for start in range(0, 600, 30):
                writer.set_many({f"notes/k{number}": b"x" for number in range(start, start + 30)})
                time.sleep(0.1)

        thread = threading.Thread(target=write)
        thread.start()
        while len(audited(client)) < 150:  # mid-stream
            time.sleep(0.02)
        hosts.kill(victim)
        killed = time.monotonic()
        while holder_of(backend, "notes/") in (None, delivering):
            assert time.monotonic() - killed < LEASE + 30, "nobody took the lease over"
            time.sleep(0.02)
        takeover = time.monotonic() - killed
        thread.join()
        hosts.start(victim)  # its return
        hosts.wait_ready(victim)
        counts = wait_audited(client, keys)

    duplicates = sum(count - 1 for count in counts.values())
    redelivered = sum(hosts.metric(index, "wasikv_watch_redelivered_changes_total") for index in range(3))
    assert sum(hosts.metric(index, "wasikv_watch_takeovers_total") for index in range(3)) >= 1
    print(
        f"[{backend.name}] kill -9 with a {LEASE:g}s lease: taken over after {takeover:.2f}s; "
        f"{duplicates} changes audited twice, {redelivered:g} reported delivered again"
    )
    assert set(counts) == keys  # nothing missed
    assert duplicates <= redelivered <= BATCH
    assert takeover < LEASE + 10
    # The host that took over said so, in one line.
    lines = [line for index in range(3) if index != victim for line in takeover_lines(hosts.log(index))]
    assert any(f"/{delivering}/" in line and "notes/" in line for line in lines), lines


def test_a_frozen_holder_is_fenced_out_when_it_wakes(hosts: Hosts, backend: Backend) -> None:
    """SIGSTOP of the delivering host for two lease times: the other takes over; the sleeper
    wakes believing nothing happened, finds its lease gone by its own clock, and stops."""
    for index in range(2):
        hosts.start(index)
    for index in range(2):
        hosts.wait_ready(index)
    delivering = holder_of(backend, "notes/")
    assert delivering is not None
    sleeper = next(index for index in range(2) if hosts.pid(index) == delivering)
    keys = {f"notes/f{number}" for number in range(300)}
    with Host({"default": backend.default_url, "audit": backend.audit_url}, compile_cache=False) as client:
        writer = client.bucket("default")
        writer.set_many({f"notes/f{number}": b"x" for number in range(100)})
        os.kill(hosts.pid(sleeper), signal.SIGSTOP)
        try:
            writer.set_many({f"notes/f{number}": b"x" for number in range(100, 200)})
            time.sleep(LEASE * 2 + 1)  # past the lease and a standby's slowest poll
        finally:
            os.kill(hosts.pid(sleeper), signal.SIGCONT)
        writer.set_many({f"notes/f{number}": b"x" for number in range(200, 300)})
        counts = wait_audited(client, keys)
    duplicates = sum(count - 1 for count in counts.values())
    redelivered = sum(hosts.metric(index, "wasikv_watch_redelivered_changes_total") for index in range(2))
    print(f"[{backend.name} freeze] {duplicates} audited twice, {redelivered:g} reported delivered again")
    assert set(counts) == keys
    assert duplicates <= redelivered <= BATCH
    assert "stopped delivering" in hosts.log(sleeper)


@pytest.mark.parametrize("server", ["redis", "postgres"])
def test_store_outage_and_recovery(tmp_path: Path, built: dict[str, Path], server: str) -> None:
    """Two hosts on a private server that stops for longer than the lease and comes back."""
    if server == "redis":
        private: RedisServer | PostgresServer = RedisServer(
            tmp_path / "redis", "--appendonly", "yes", "--appendfsync", "always"
        )
        private.start()
        backend = redis_backend("outage", private.address, 0)
    else:
        private = PostgresServer(tmp_path / "pg")
        private.start()
        backend = postgres_backend("outage", private.port, "postgres")
    group = Hosts(tmp_path / "hosts", built, backend)
    try:
        for index in range(2):
            group.start(index)
        for index in range(2):
            group.wait_ready(index)
        with Host(
            {"default": backend.default_url, "audit": backend.audit_url}, compile_cache=False
        ) as client:
            writer = client.bucket("default")
            for number in range(100):
                writer.set(f"notes/before{number}", b"x")
            wait_audited(client, {f"notes/before{number}" for number in range(100)})
            private.stop()
            time.sleep(LEASE * 2)  # every lease runs out while the store is away
            private.start()
            for number in range(100):
                writer.set(f"notes/after{number}", b"x")
            keys = {f"notes/{when}{number}" for when in ("before", "after") for number in range(100)}
            counts = wait_audited(client, keys)
        assert all(process.poll() is None for process in group.processes.values())
        duplicates = sum(count - 1 for count in counts.values())
        redelivered = sum(group.metric(index, "wasikv_watch_redelivered_changes_total") for index in range(2))
        print(
            f"[{server} outage] {duplicates} changes audited twice, {redelivered:g} reported delivered again"
        )
        assert set(counts) == keys
        assert duplicates <= redelivered <= BATCH
    finally:
        group.stop_all()
        if isinstance(private, RedisServer):
            private.stop()
        else:
            private.remove()


@pytest.mark.parametrize("value", ["0", "nan", "3601", "-1"])
def test_a_bad_watch_lease_is_refused(tmp_path: Path, built: dict[str, Path], value: str) -> None:
    cwd = Hosts(tmp_path, built, sqlite_backend(tmp_path)).directory(0)
    env = {**os.environ, "WASIKV_CACHE_DIR": str(COMPILE_CACHE)}
    listen = f"127.0.0.1:{_free_port()}"
    done = subprocess.run(
        [sys.executable, "-m", "wasikv", "up", "--listen", listen, "--watch-lease", value],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "--watch-lease: the lease time must be a number of seconds from 1 to 3600" in done.stderr
    assert "Traceback" not in done.stderr
