"""`wasikv up` with hostile requests mixed into normal ones: deadlines, memory, queue, shutdown."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from ..redis_support import RedisServer
from ..support import COMPILE_CACHE
from ..test_up import free_port
from .conftest import HOSTILE_MANIFEST

MANIFEST = HOSTILE_MANIFEST

WORKERS = 2
CAP_MIB = 128
# Long enough for a trap that takes 0.35 s alone (`overflow`) on a machine the
# rest of the suite keeps busy; the loops still run into it.
TIMEOUT = 3.0


class Up:
    """A `wasikv up` process and what it printed."""

    def __init__(self, proc: subprocess.Popen[str], base: str) -> None:
        self.proc = proc
        self.base = base
        self.peak_rss_mib = 0.0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def rss_mib(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def _sample(self) -> None:
        while not self._stop.is_set() and self.proc.poll() is None:
            try:
                self.peak_rss_mib = max(self.peak_rss_mib, self.rss_mib())
            except OSError:
                return
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGINT) -> tuple[float, str]:
        """Send `sig`; return how long the process took to exit, and its stderr."""
        self._stop.set()
        sent = time.monotonic()
        self.proc.send_signal(sig)
        _, err = self.proc.communicate(timeout=60)
        return time.monotonic() - sent, err


def start_up(app_dir: Path, *args: str) -> Up:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "wasikv", "up", "--listen", f"127.0.0.1:{port}", *args],
        cwd=app_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Without RUST_BACKTRACE, as in production: printing a backtrace makes
        # an abort at exit rarer, which would hide one.
        env={
            **{k: v for k, v in os.environ.items() if k != "RUST_BACKTRACE"},
            "WASIKV_CACHE_DIR": str(COMPILE_CACHE),
        },
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    while True:
        try:
            httpx.get(base + "/none", timeout=1)
            return Up(proc, base)
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"server did not start: {proc.communicate()}") from None
            time.sleep(0.1)


@pytest.fixture
def up(app_dir: Path) -> Iterator[Up]:
    server = start_up(
        app_dir,
        "--workers",
        str(WORKERS),
        "--request-timeout",
        str(TIMEOUT),
        "--max-memory",
        str(CAP_MIB),
        "--queue-limit",
        "16",
    )
    yield server
    if server.proc.poll() is None:
        server.proc.kill()
        server.proc.communicate()


def _timed(client: httpx.Client, path: str) -> tuple[str, int, float]:
    started = time.monotonic()
    status = client.get(path).status_code
    return path, status, time.monotonic() - started


def test_hostile_requests_among_normal_ones(up: Up) -> None:
    hostile = [f"/hostile/{mode}" for mode in ("loop", "hog", "alloc", "loop", "hog", "overflow")]
    paths = []
    for i in range(48):
        paths.append(hostile[i // 8] if i % 8 == 3 else "/hostile/ok")
    with httpx.Client(base_url=up.base, timeout=60) as client, ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda path: _timed(client, path), paths))
    normal = [(status, elapsed) for path, status, elapsed in results if path == "/hostile/ok"]
    assert [status for status, _ in normal] == [200] * len(normal)
    for path, status, _ in results:
        if path in ("/hostile/loop", "/hostile/hog"):
            # Stopped at the deadline (hog first fills its memory, then loops).
            assert status == 504, (path, status)
        elif path == "/hostile/alloc":
            assert status == 200  # a MemoryError the guest handled
        elif path == "/hostile/overflow":
            assert status == 500
    # Each hostile request ended within its deadline plus the time it may
    # have waited for one of the two workers behind another hostile one.
    assert max(elapsed for path, _, elapsed in results if path != "/hostile/ok") < 3 * TIMEOUT + 2
    assert up.peak_rss_mib < WORKERS * CAP_MIB + 300, f"peak RSS {up.peak_rss_mib:.0f} MiB"
    took, err = up.stop(signal.SIGINT)
    assert took < 10 and up.proc.returncode == 0, err
    assert f"ran past the {TIMEOUT:g} s request timeout; answered 504" in err
    assert "route /hostile/..." in err and "component hostile" in err
    assert "panicked" not in err and "Traceback" not in err


def test_sigterm_stops_the_server_while_guests_loop(up: Up) -> None:
    client = httpx.Client(base_url=up.base, timeout=60)
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = [pool.submit(client.get, "/hostile/loop") for _ in range(4)]
        time.sleep(0.5)
        took, err = up.stop(signal.SIGTERM)
        statuses = sorted(a.result().status_code if not a.exception() else 0 for a in answers)
    assert took < 10, err
    assert "panicked" not in err and "Traceback" not in err
    # In-flight and queued requests are answered (504 or 503), not dropped mid-way.
    assert all(status in (503, 504) for status in statuses), statuses


def test_a_full_queue_is_a_503_with_retry_after(app_dir: Path) -> None:
    server = start_up(app_dir, "--workers", "1", "--queue-limit", "1", "--request-timeout", "3")
    try:
        with httpx.Client(base_url=server.base, timeout=60) as client, ThreadPoolExecutor(4) as pool:
            busy = [pool.submit(client.get, "/hostile/loop") for _ in range(2)]
            time.sleep(0.8)  # one runs, one waits: the queue is full
            refused = client.get("/hostile/ok")
            assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
            # The one that ran is stopped at its deadline (504); the queued one
            # runs after it (504) or, when its own deadline passed first in the
            # queue, is answered 503 without running.
            statuses = sorted(f.result().status_code for f in busy)
            assert statuses in ([503, 504], [504, 504]), statuses
            assert client.get("/hostile/ok").status_code == 200
    finally:
        server.stop()


def test_a_guest_blocked_in_a_sleep_is_answered_504_and_replaced(app_dir: Path) -> None:
    # Epochs cannot stop a guest inside a host call; its worker is written
    # off after the deadline and a fresh one serves the next requests.
    server = start_up(app_dir, "--workers", "1", "--request-timeout", "1")
    try:
        with httpx.Client(base_url=server.base, timeout=60) as client:
            started = time.monotonic()
            assert client.get("/hostile/sleep").status_code == 504
            assert time.monotonic() - started < 4
            assert [client.get("/hostile/ok").status_code for _ in range(3)] == [200] * 3
        took, err = server.stop()
        assert took < 10
        assert "blocked past its 1 s request timeout" in err
    finally:
        if server.proc.poll() is None:
            server.proc.kill()


def test_stopping_after_a_store_failed_never_aborts(app_dir: Path, tmp_path: Path) -> None:
    # Requests against an unreachable Redis used to leave wasmtime stores to
    # the garbage collector, whose drop at interpreter exit aborted the
    # process ("panic in a function that cannot unwind", exit 134).
    redis = RedisServer(tmp_path / "redis")
    (app_dir / "runtime-config.toml").write_text(
        f'[key_value_store.default]\ntype = "redis"\nurl = "redis://{redis.address}/0"\n'
    )
    for _ in range(3):
        redis.start()  # up checks its stores before it serves
        server = start_up(app_dir, "--workers", "2")
        redis.stop(signal.SIGKILL)
        with httpx.Client(base_url=server.base, timeout=60) as client:
            assert client.get("/hostile/count").status_code == 500
            assert client.get("/hostile/ok").status_code == 200
        took, err = server.stop(signal.SIGINT)
        assert server.proc.returncode == 0, err
        assert "panicked" not in err and "Connection refused" in err
        assert took < 10


def test_an_unreachable_store_stops_up_before_it_serves(app_dir: Path) -> None:
    config = app_dir / "runtime-config.toml"
    config.write_text(
        f'[key_value_store.default]\ntype = "redis"\nurl = "redis://127.0.0.1:{free_port()}/0"\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "wasikv", "up", "--listen", f"127.0.0.1:{free_port()}"],
        cwd=app_dir,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "WASIKV_CACHE_DIR": str(COMPILE_CACHE)},
    )
    assert done.returncode == 1 and "Serving" not in done.stdout
    assert done.stderr.startswith("Error: store 'default' cannot be used: redis store at 127.0.0.1:")
    assert "Connection refused" in done.stderr and f"(configured in {config})" in done.stderr


def test_a_port_in_use_stops_up_before_it_serves(app_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for extra in ([], ["--processes", "2"]):
            done = subprocess.run(
                [sys.executable, "-m", "wasikv", "up", "--listen", f"127.0.0.1:{port}", *extra],
                cwd=app_dir,
                capture_output=True,
                text=True,
                timeout=120,
                env={**os.environ, "WASIKV_CACHE_DIR": str(COMPILE_CACHE)},
            )
            assert done.returncode == 1 and "Serving" not in done.stdout, extra
            assert done.stderr == f"Error: cannot listen on 127.0.0.1:{port}: Address already in use\n"
