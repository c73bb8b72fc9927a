"""HTTP trigger benchmark: `wasikv up` serving examples/http-counter on loopback.

The load generator is deliberately thin (asyncio streams, keep-alive
connections, hand-written HTTP/1.1) so that on a 2-core machine as little
CPU as possible goes to the client. The count after the run must equal the
number of POSTs.
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from wasikv import Host, InstancePool
from wasikv.build.guest_build import build_cached
from wasikv.capability import InstanceSpec
from wasikv.triggers.http_component import HttpComponent, HttpRequest

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".wasikv-test"
WORLD = "wasikv:app/http-trigger"
# Connections x requests each before the measured load.
WARM_UP = (4, 10)
WARM_UP_REQUESTS = WARM_UP[0] * WARM_UP[1]


async def _client(port: int, requests: int, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = b"POST /counter HTTP/1.1\r\nhost: bench\r\ncontent-length: 0\r\n\r\n"
    for _ in range(requests):
        started = time.perf_counter()
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"unexpected response: {head[:40]!r}")
        latencies.append(time.perf_counter() - started)
    writer.close()


async def _load(port: int, connections: int, per_connection: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    started = time.perf_counter()
    await asyncio.gather(*(_client(port, per_connection, latencies) for _ in range(connections)))
    return time.perf_counter() - started, latencies


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of a process and its live children (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return own + sum(_cpu_seconds(int(child)) for child in children)


def free_port() -> int:
    """A loopback port free at the time of asking."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def measure(
    connections: int = 16, per_connection: int = 125, workers: int | None = None, processes: int = 1
) -> dict[str, Any]:
    """Requests/s and latency percentiles of POST /counter with a fresh instance each.

    With `processes` > 1 the server is `up --processes`, and its CPU time is
    the supervisor's and every child's.
    """
    wasm = build_cached(ROOT / "examples" / "http-counter", CACHE / "guests", world=WORLD)
    with tempfile.TemporaryDirectory() as tmp:
        app = Path(tmp)
        shutil.copy(wasm, app / "app.wasm")
        shutil.copy(ROOT / "examples" / "http-counter" / "wasikv.toml", app / "wasikv.toml")
        port = free_port()
        env = {**os.environ, "WASIKV_CACHE_DIR": str(CACHE / "compiled")}
        server = subprocess.Popen(
            [sys.executable, "-m", "wasikv", "up", "--listen", f"127.0.0.1:{port}"]
            + ([] if workers is None else ["--workers", str(workers)])
            + ([] if processes == 1 else ["--processes", str(processes)]),
            cwd=app,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(port)
            # Every process listening before the keep-alive connections open,
            # or the kernel gives them all to the first.
            wait_for_listeners(port, processes)
            figures = drive(port, server.pid, connections, per_connection)
            count = _get_count(port)
        finally:
            server.terminate()
            server.wait(timeout=30)
    return {
        **figures,
        "processes": processes,
        "final_count": count,
        "expected_count": figures["requests"] + WARM_UP_REQUESTS,
    }


def measure_scaling(counts: tuple[int, ...] = (1, 2)) -> list[dict[str, Any]]:
    """`measure` at each number of server processes, for the scaling curve."""
    return [measure(processes=count) for count in counts]


def drive(port: int, pid: int, connections: int = 16, per_connection: int = 125) -> dict[str, Any]:
    """Warm up, then POST /counter `connections x per_connection` times over keep-alive connections.

    The one load generator of the HTTP benchmarks (wasikv up, wasmtime
    serve). `pid` is the server process, whose CPU time is sampled around
    the measured load.
    """
    asyncio.run(_load(port, *WARM_UP))  # warm up threads and caches
    cpu_before = _cpu_seconds(pid)
    elapsed, latencies = asyncio.run(_load(port, connections, per_connection))
    cpu = _cpu_seconds(pid) - cpu_before
    total = connections * per_connection
    latencies.sort()
    return {
        "requests": total,
        "connections": connections,
        "requests_per_s": total / elapsed,
        # Server CPU per request: steadier than req/s when the client shares the cores.
        "cpu_ms_per_request": cpu * 1000 / total,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }


def measure_instantiate(runs: int = 200) -> dict[str, float]:
    """Per-request cost in-process (pooling allocator, as `wasikv up`): instantiate, and + handle."""
    wasm = build_cached(ROOT / "examples" / "http-counter", CACHE / "guests", world=WORLD)
    with Host({"default": "memory:"}, cache_dir=CACHE / "compiled", instance_pool=InstancePool()) as host:
        component = host.load(wasm)
        started = time.perf_counter()
        for _ in range(runs):
            with host.instantiate(component, InstanceSpec(stderr=io.BytesIO())):
                pass
        instantiate = (time.perf_counter() - started) / runs * 1000
        handler = HttpComponent(host, component)
        started = time.perf_counter()
        for _ in range(runs):
            handler.handle(HttpRequest("POST", "/counter"))
        handle = (time.perf_counter() - started) / runs * 1000
    return {"instantiate_ms": instantiate, "instantiate_and_handle_ms": handle}


def wait_for(port: int, server: str = "wasikv up") -> None:
    """Wait until something accepts connections on loopback `port` (4 minutes at most)."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{server} did not start")


def wait_for_listeners(port: int, count: int) -> None:
    """Wait until `count` sockets listen on loopback `port` (SO_REUSEPORT), 4 minutes at most."""
    deadline = time.monotonic() + 240
    while _listeners(port) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"fewer than {count} processes listen on port {port}")
        time.sleep(0.1)


def _listeners(port: int) -> int:
    # /proc/net/tcp: "sl local_address rem_address st ...", addresses as hex IP:PORT, 0A = LISTEN.
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for row in rows if row.split()[1].endswith(f":{port:04X}") and row.split()[3] == "0A")


def _get_count(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /counter HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    return int(data.split(b"\r\n\r\n", 1)[1])


if __name__ == "__main__":
    print(measure_instantiate())
    print(measure())
