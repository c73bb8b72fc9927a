"""Guests blocked inside a host call under `wasikv up`: capacity, queued deadlines, shutdown, signals.

A guest in `time.sleep` waits inside wasmtime's WASI clock, not in wasm, so
epoch deadlines cannot stop it. What holds instead: its request is answered
504 a second after the deadline and its worker replaced (so `--workers`
threads keep serving), a request that cannot get a worker in time is
answered 503, and a shutdown whose drain (`--drain-timeout`) ends first
answers everything 503 and ends within 10 s.
"""

from __future__ import annotations

import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from ..test_up import free_port
from .test_up_hostile import start_up

pytestmark = pytest.mark.slow

# What a shutdown may print: no traceback, no asyncio leftovers.
_NOISE = ("Traceback", "Exception in ASGI application", "CancelledError", "never retrieved", "panicked")


def _clean(err: str) -> None:
    for noise in _NOISE:
        assert noise not in err, err


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match, text
    return float(match.group(1))


def test_six_sleepers_never_starve_normal_requests(app_dir: Path) -> None:
    # The red-team run: 2 workers, six requests whose guest sleeps, and normal
    # clients, who used to get nothing at all once four workers were stuck.
    metrics_port = free_port()
    server = start_up(
        app_dir, "--workers", "2", "--request-timeout", "2", "--metrics", f"127.0.0.1:{metrics_port}"
    )
    try:
        with httpx.Client(base_url=server.base, timeout=60) as client, ThreadPoolExecutor(8) as pool:
            sleepers = [pool.submit(client.get, "/hostile/sleep") for _ in range(6)]
            time.sleep(0.5)
            normal: list[int] = []
            until = time.monotonic() + 12
            while time.monotonic() < until:
                normal.append(client.get("/hostile/ok").status_code)
                time.sleep(0.05)
            statuses = [f.result().status_code for f in sleepers]
            scrape = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
        # Each sleeper is answered, 504 (blocked past its deadline) or 503 (it
        # waited for a worker past its deadline); never silence.
        assert sorted(set(statuses)) <= [503, 504] and statuses.count(504) >= 2, statuses
        # Normal requests were served all along, by replacement workers.
        assert normal.count(200) >= 0.9 * len(normal) and len(normal) > 20, normal
        assert _metric(scrape, "wasikv_workers_written_off_total") == statuses.count(504)
        assert _metric(scrape, "wasikv_workers_blocked") == statuses.count(504)
        took, err = server.stop(signal.SIGTERM)
        assert took < 10 and server.proc.returncode == 0, err
        assert "is blocked past its 2 s request timeout (in a host call)" in err
        assert "written off and replaced" in err
        _clean(err)
    finally:
        if server.proc.poll() is None:
            server.proc.kill()


def test_a_request_that_never_gets_a_worker_is_answered_503_at_its_deadline(app_dir: Path) -> None:
    # One worker, and none replaced: once its guest is stuck, queued requests
    # can never run. They are answered at their deadline, not left hanging.
    server = start_up(app_dir, "--workers", "1", "--max-blocked", "0", "--request-timeout", "1")
    try:
        with httpx.Client(base_url=server.base, timeout=30) as client, ThreadPoolExecutor(2) as pool:
            sleeper = pool.submit(client.get, "/hostile/sleep")
            time.sleep(0.3)
            started = time.monotonic()
            queued = client.get("/hostile/ok")
            waited = time.monotonic() - started
            assert queued.status_code == 503 and queued.headers["retry-after"] == "1"
            assert waited < 8, waited
            assert sleeper.result().status_code == 504
        took, err = server.stop(signal.SIGTERM)
        assert "waited 2 s for a worker; answered 503" in err
        assert "its worker is not replaced" in err
        assert took < 10, err
        _clean(err)
    finally:
        if server.proc.poll() is None:
            server.proc.kill()


def test_shutdown_with_blocked_guests_answers_503_within_10_s(app_dir: Path) -> None:
    # The drain is shorter than the requests' deadline: at its end, what still
    # runs is answered 503.
    server = start_up(app_dir, "--workers", "2", "--request-timeout", "30", "--drain-timeout", "5")
    try:
        with httpx.Client(base_url=server.base, timeout=60) as client, ThreadPoolExecutor(6) as pool:
            answers = [pool.submit(client.get, "/hostile/sleep") for _ in range(3)]
            answers.append(pool.submit(client.get, "/hostile/loop"))
            time.sleep(1.0)
            took, err = server.stop(signal.SIGTERM)
            statuses = [a.result().status_code for a in answers]
        assert took < 10, (took, err)
        assert server.proc.returncode == 0, err
        assert statuses == [503] * 4, statuses
        _clean(err)
    finally:
        if server.proc.poll() is None:
            server.proc.kill()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_second_signal_ends_the_server_at_once(app_dir: Path, sig: signal.Signals) -> None:
    server = start_up(app_dir, "--workers", "2", "--request-timeout", "30")
    try:
        with httpx.Client(base_url=server.base, timeout=60) as client, ThreadPoolExecutor(2) as pool:
            pool.submit(client.get, "/hostile/sleep")
            time.sleep(0.5)
            server.proc.send_signal(sig)
            time.sleep(0.5)
            took, err = server.stop(sig)
        assert took < 2, (took, err)
        assert server.proc.returncode == 128 + sig, err
        assert f"stopped at once (second {sig.name})" in err
        _clean(err)
    finally:
        if server.proc.poll() is None:
            server.proc.kill()


def test_a_second_signal_ends_every_process_at_once(app_dir: Path, tmp_path: Path) -> None:
    # --processes refuses memory: stores; give the app a SQLite one.
    (tmp_path / "runtime-config.toml").write_text(
        '[key_value_store.default]\ntype = "sqlite"\npath = "kv.sqlite3"\n'
    )
    server = start_up(
        app_dir, "--processes", "2", "--request-timeout", "30", "--runtime-config-file", "runtime-config.toml"
    )
    try:
        with httpx.Client(base_url=server.base, timeout=60) as client, ThreadPoolExecutor(2) as pool:
            pool.submit(client.get, "/hostile/sleep")
            time.sleep(0.5)
            server.proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            took, err = server.stop(signal.SIGTERM)
        assert took < 4, (took, err)
        assert server.proc.returncode == 128 + signal.SIGTERM, err
        assert "at once (second SIGTERM)" in err
        _clean(err)
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
