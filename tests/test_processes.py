"""`wasikv up --processes N` and `--metrics`: real server processes, real clients, real scrapes."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from wasikv import Host
from wasikv.app.loader import load_app
from wasikv.server.processes import listening_socket

from .support import COMPILE_CACHE, ROOT, guest_wasm
from .test_up import free_port

EXAMPLE = ROOT / "examples" / "watch-audit"


@pytest.fixture(scope="module")
def built() -> dict[str, Path]:
    return {
        "notes": guest_wasm("examples/watch-audit", "wasikv:app/http-trigger", module="notes"),
        "audit": guest_wasm("examples/watch-audit", "wasikv:app/watch-trigger", module="audit"),
    }


@pytest.fixture
def app_dir(tmp_path: Path, built: dict[str, Path]) -> Path:
    for name in ("wasikv.toml", "runtime-config.toml"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    for module, wasm in built.items():
        shutil.copy(wasm, tmp_path / f"{module}.wasm")
    return tmp_path


class Server:
    def __init__(self, proc: subprocess.Popen[str], base: str, metrics: str | None) -> None:
        self.proc = proc
        self.base = base
        self.metrics = metrics
        self.out = ""

    def children(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(pid) for pid in out.split()]

    def stop(self, sig: int = signal.SIGTERM) -> tuple[float, str]:
        sent = time.monotonic()
        self.proc.send_signal(sig)
        self.out, err = self.proc.communicate(timeout=60)
        return time.monotonic() - sent, err


def start(app_dir: Path, *args: str) -> Server:
    port, metrics_port = free_port(), free_port()
    metrics = None
    if "--metrics" in args:
        args = tuple(a if a != "METRICS" else f"127.0.0.1:{metrics_port}" for a in args)
        metrics = f"http://127.0.0.1:{metrics_port}/metrics"
    proc = subprocess.Popen(
        [sys.executable, "-m", "wasikv", "up", "--listen", f"127.0.0.1:{port}", *args],
        cwd=app_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "WASIKV_CACHE_DIR": str(COMPILE_CACHE)},
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    while True:
        try:
            httpx.get(base + "/nothing", timeout=1)
            return Server(proc, base, metrics)
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"server did not start: {proc.communicate()}") from None
            time.sleep(0.1)


@pytest.fixture
def two(app_dir: Path) -> Iterator[Server]:
    server = start(app_dir, "--processes", "2", "--workers", "2", "--metrics", "METRICS")
    yield server
    if server.proc.poll() is None:
        children = server.children()
        server.proc.kill()
        server.proc.communicate(timeout=60)  # ends once the orphaned children have closed its pipes
        assert _all_gone(children)


def _all_gone(pids: list[int], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while any(Path(f"/proc/{pid}").exists() for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_two_processes_share_the_port_the_store_and_one_delivery(two: Server, app_dir: Path) -> None:
    children = two.children()
    assert len(children) == 2
    before = {pid: _cpu_seconds(pid) for pid in children}
    # 8 at once: never more than one process's 2 workers + 8 queued, however
    # the kernel spreads the connections, so no request is turned away (503).
    # A connection each: the kernel spreads connections, not requests, and a
    # few keep-alive connections could all land on one process.
    with httpx.Client(base_url=two.base, timeout=60, headers={"connection": "close"}) as client:

        def put(i: int) -> int:
            return client.put(f"/notes/n{i}", content=b"x").status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(put, range(200)))
    assert statuses == [204] * 200
    # The kernel spread the connections: both processes worked.
    assert all(_cpu_seconds(pid) - before[pid] > 0.05 for pid in children)
    # Both run the watcher and take turns through its lease: every change audited once, none twice.
    loaded = load_app(app_dir / "wasikv.toml")
    with Host(loaded.stores, cache_dir=COMPILE_CACHE) as host:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            entries = [
                json.loads(host.bucket("audit").get(k) or b"{}") for k in host.bucket("audit").keys("entry/")
            ]
            if len(entries) >= 200:
                break
            time.sleep(0.2)
        keys = sorted(entry["key"] for entry in entries)
    assert keys == sorted(f"notes/n{i}" for i in range(200))
    took, err = two.stop(signal.SIGTERM)
    assert took < 15 and two.proc.returncode == 0, err
    assert "panicked" not in err and "Traceback" not in err


def test_a_dead_process_is_restarted(two: Server, app_dir: Path) -> None:
    victim = two.children()[0]  # maybe the one delivering: the other takes its lease over
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = two.children()
        if len(children) == 2 and victim not in children:
            break
        time.sleep(0.2)
    assert len(two.children()) == 2 and victim not in two.children()
    with httpx.Client(base_url=two.base, timeout=60) as client:
        assert all(client.put(f"/notes/r{i}", content=b"y").status_code == 204 for i in range(20))
    loaded = load_app(app_dir / "wasikv.toml")
    with Host(loaded.stores, cache_dir=COMPILE_CACHE) as host:
        audit = host.bucket("audit")
        deadline = time.monotonic() + 60  # a takeover waits out the dead process's lease (10 s)
        keys: set[str] = set()
        while time.monotonic() < deadline and len(keys) < 20:
            keys = {json.loads(audit.get(k) or b"{}").get("key") for k in audit.keys("entry/")}
            time.sleep(0.2)
    assert keys == {f"notes/r{i}" for i in range(20)}
    _, err = two.stop(signal.SIGINT)
    assert "exited with status -9" in err and "restarting it" in err


def test_children_stop_when_the_supervisor_is_killed(two: Server) -> None:
    children = two.children()
    two.proc.kill()
    # communicate() returns only once every child has closed the inherited pipes.
    _, err = two.proc.communicate(timeout=30)
    assert _all_gone(children)
    assert err.count("the supervisor (pid") == 2, err


def test_metrics_sum_every_process(two: Server) -> None:
    assert two.metrics is not None
    # start() probed with GET /nothing until the server answered: 404s already counted.
    before = _samples(httpx.get(two.metrics, timeout=10).text)
    with httpx.Client(base_url=two.base, timeout=60) as client:
        for i in range(30):
            assert client.put(f"/notes/m{i}", content=b"z").status_code == 204
        assert client.get("/nowhere").status_code == 404
    deadline = time.monotonic() + 10
    while True:
        text = httpx.get(two.metrics, timeout=10).text
        samples = _samples(text)
        lag_seen = any(name == "wasikv_watcher_lag_changes" for name, _ in samples)
        if lag_seen or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert samples[("wasikv_http_requests_total", 'route="/notes/...",status="204"')] == 30
    not_found = ("wasikv_http_requests_total", 'route="(none)",status="404"')
    assert samples[not_found] == before[not_found] + 1
    instantiated = [
        value
        for (name, labels), value in samples.items()
        if name == "wasikv_instantiate_duration_seconds_count" and labels.endswith('notes.wasm"')
    ]
    assert instantiated and instantiated[0] >= 30
    store_calls = sum(
        v
        for (name, labels), v in samples.items()
        if name == "wasikv_store_operation_duration_seconds_count" and 'store="default"' in labels
    )
    assert store_calls >= 30
    assert lag_seen
    two.stop()


def _samples(text: str) -> dict[tuple[str, str], float]:
    found: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, value = line.rsplit(" ", 1)
        name, _, labels = head.partition("{")
        found[(name, labels.rstrip("}"))] = float(value)
    return found


def test_memory_stores_are_refused_with_processes(app_dir: Path) -> None:
    (app_dir / "runtime-config.toml").write_text('[key_value_store.audit]\ntype = "memory"\n')
    done = subprocess.run(
        [sys.executable, "-m", "wasikv", "up", "--listen", f"127.0.0.1:{free_port()}", "--processes", "2"],
        cwd=app_dir,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "WASIKV_CACHE_DIR": str(COMPILE_CACHE)},
    )
    assert done.returncode == 1
    assert (
        "store 'audit' is 'memory:audit': with --processes every process would hold its own copy"
        in done.stderr
    )


def test_metrics_of_one_process(app_dir: Path) -> None:
    server = start(app_dir, "--metrics", "METRICS")
    try:
        assert server.metrics is not None and server.children() == []
        with httpx.Client(base_url=server.base, timeout=60) as client:
            for i in range(5):
                assert client.put(f"/notes/s{i}", content=b"z").status_code == 204
        samples = _samples(httpx.get(server.metrics, timeout=10).text)
        assert samples[("wasikv_http_requests_total", 'route="/notes/...",status="204"')] == 5
        sets = [
            value
            for (name, labels), value in samples.items()
            if name == "wasikv_store_operation_duration_seconds_count" and 'operation="set"' in labels
        ]
        assert sum(sets) >= 5
        # The watcher runs in this process, so its instances are counted here too.
        assert samples[("wasikv_instances", "")] >= 0
    finally:
        _, err = server.stop()
    # A SIGTERM is a clean stop, as Ctrl-C is.
    assert server.proc.returncode == 0 and server.out.rstrip().endswith("Stopped"), err


def test_connections_to_a_child_socket_get_tcp_nodelay() -> None:
    # Without TCP_NODELAY every response waits ~40 ms for the client's delayed ACK.
    async def main() -> int:
        options: list[int] = []

        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            options.append(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(accepted, sock=listening_socket("127.0.0.1", 0))
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        while not options:
            await asyncio.sleep(0.01)
        writer.close()
        server.close()
        return options[0]

    assert asyncio.run(main()) != 0
