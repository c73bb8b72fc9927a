"""Liveness, readiness and draining of `wasikv up`: real server processes, real stores, real signals.

The app is the suite's guest (tests/guests/suite): `/hostile/count` increments
`hits` in the default store, `/hostile/nap` sleeps 3 s (in a host call) and
answers 200, and as a watcher of `hostile/` keys it records each key `K` it
is told about under `seen/K` (a `.../nap` key after a 3 s sleep).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from wasikv.server.health import LOOP_WAIT, PROBE_INTERVAL, PROBE_TIMEOUT, Health, StoreProbe, Verdict
from wasikv.stores.sqlite import SqliteStore

from . import postgres_support as pg
from .redis_support import RedisServer
from .sandbox.test_up_hostile import Up, start_up
from .support import suite_wasm
from .test_up import free_port

pytestmark = pytest.mark.slow

MANIFEST = """\
spin_manifest_version = 2
[application]
name = "health"

[[trigger.http]]
route = "/hostile/..."
component = "hostile"

[[trigger.key-value]]
store = "default"
prefix = "hostile/"
component = "hostile"

[component.hostile]
source = "hostile.wasm"
key_value_stores = ["default"]
"""

SQLITE_CONFIG = '[key_value_store.default]\ntype = "sqlite"\npath = "kv.db"\n'
# The noise a clean stop never prints.
_NOISE = ("Traceback", "panicked", "Exception in ASGI application", "never retrieved")


@pytest.fixture(scope="module")
def hostile_wasm() -> Path:
    return suite_wasm()


@pytest.fixture
def app_dir(hostile_wasm: Path, tmp_path: Path) -> Path:
    shutil.copy(hostile_wasm, tmp_path / "hostile.wasm")
    (tmp_path / "wasikv.toml").write_text(MANIFEST)
    (tmp_path / "runtime-config.toml").write_text(SQLITE_CONFIG)
    return tmp_path


def eventually(check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


class Probes:
    """The probe listener of a server."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str) -> tuple[int, dict[str, Any]]:
        response = httpx.get(self.base + path, timeout=10)
        assert response.headers["content-type"] == "application/json"
        return response.status_code, response.json()

    def ready(self) -> tuple[int, dict[str, Any]]:
        return self.get("/readyz")

    def wait_ready(self) -> None:
        eventually(lambda: self.ready()[0] == 200, timeout=60)


def _up(app_dir: Path, *args: str) -> tuple[Up, Probes]:
    port = free_port()
    server = start_up(app_dir, "--health", f"127.0.0.1:{port}", *args)
    return server, Probes(port)


@pytest.fixture
def stopped() -> Iterator[list[Up]]:
    """Servers a test started: killed at its end if still running."""
    servers: list[Up] = []
    yield servers
    for server in servers:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.communicate()


def _clean(err: str) -> None:
    for noise in _NOISE:
        assert noise not in err, err


# ------------------------------------------------------------ the probes


def test_probes_answer_on_their_own_port_never_on_the_apps(app_dir: Path, stopped: list[Up]) -> None:
    metrics_port = free_port()
    server, probes = _up(app_dir, "--metrics", f"127.0.0.1:{metrics_port}")
    stopped.append(server)
    probes.wait_ready()
    assert probes.ready() == (200, {"status": "ready"})
    assert probes.get("/livez") == (200, {"status": "live"})
    # The app's port is the app's: its router answers every path there.
    assert httpx.get(server.base + "/readyz", timeout=10).status_code == 404
    assert httpx.get(server.base + "/livez", timeout=10).status_code == 404
    # The metrics listener serves the probes beside /metrics.
    metrics = Probes(metrics_port)
    assert metrics.ready() == (200, {"status": "ready"})
    assert metrics.get("/livez") == (200, {"status": "live"})
    assert "wasikv_http_requests_total" in httpx.get(f"{metrics.base}/metrics", timeout=10).text
    # Anything else on the probes' own port is refused, plainly.
    other = httpx.get(probes.base + "/metrics", timeout=10)
    assert other.status_code == 404 and "/readyz" in other.json()["error"]
    post = httpx.post(probes.base + "/readyz", timeout=10)
    assert post.status_code == 405 and post.headers["allow"] == "GET, HEAD"
    head = httpx.head(probes.base + "/readyz", timeout=10)
    assert head.status_code == 200 and head.content == b""
    _took, err = server.stop(signal.SIGTERM)
    assert server.proc.returncode == 0, err
    _clean(err)


def test_hostile_clients_of_the_probe_port_do_not_stop_it_answering(app_dir: Path, stopped: list[Up]) -> None:
    server, probes = _up(app_dir)
    stopped.append(server)
    probes.wait_ready()
    port = int(probes.base.rsplit(":", 1)[1])
    silent = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(20)]
    answers = []
    for junk in (b"\x00\xff garbage\r\n\r\n", b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n",
                 b"GET /readyz HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n"):  # fmt: skip
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(junk)
            answers.append(conn.recv(4096).split(b"\r\n", 1)[0])
    assert all(b" 400 " in a or b" 414 " in a or b" 431 " in a for a in answers), answers
    # Silent connections hold a thread each, not the listener.
    assert probes.ready() == (200, {"status": "ready"})
    assert probes.get("/livez") == (200, {"status": "live"})
    for conn in silent:
        conn.close()
    _, err = server.stop(signal.SIGTERM)
    assert server.proc.returncode == 0, err
    _clean(err)


def test_a_listener_that_cannot_listen_is_one_clear_error(app_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for flag in ("--health", "--metrics"):
            server = start_process(app_dir, flag, f"127.0.0.1:{port}")
            _, err = server.communicate(timeout=120)
            assert server.returncode == 1, err
            assert f"{flag} 127.0.0.1:{port}: cannot listen" in err and "Traceback" not in err
    bad = start_process(app_dir, "--health", "nowhere")
    _, err = bad.communicate(timeout=120)
    assert bad.returncode != 0 and "--health 'nowhere': expected HOST:PORT" in err, err
    same = start_process(app_dir, "--health", "127.0.0.1:9", "--metrics", "127.0.0.1:9")
    _, err = same.communicate(timeout=120)
    assert same.returncode == 1, err
    assert "Error: --health 127.0.0.1:9 is also --metrics's address: give it a port of its own" in err


def start_process(app_dir: Path, *args: str) -> Any:
    from .sandbox.conftest import start_wasikv

    return start_wasikv("up", "--listen", f"127.0.0.1:{free_port()}", *args, cwd=app_dir)


@pytest.mark.parametrize("processes", [1, 2], ids=["one-process", "two-processes"])
def test_readiness_fails_while_redis_is_down_and_recovers(
    app_dir: Path, tmp_path: Path, stopped: list[Up], processes: int
) -> None:
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    try:
        (app_dir / "runtime-config.toml").write_text(
            "[key_value_store.default]\n"
            'type = "redis"\n'
            f'url = "redis://:secret-password@{redis.address}/0?socket_timeout=2&connect_timeout=2"\n'
        )
        server, probes = _up(app_dir, "--processes", str(processes))
        stopped.append(server)
        probes.wait_ready()
        redis.stop()
        reason = "store 'default' is unreachable"
        if processes > 1:
            reason = "process 0: " + reason
        # Each process notices on its own next check: wait for process 0's reason.
        eventually(lambda: reason in probes.ready()[1].get("reasons", []))
        status, body = probes.ready()
        assert status == 503 and body["status"] == "not ready" and reason in body["reasons"], body
        assert "secret-password" not in json.dumps(body)
        # The process can still serve (it answers 500 for the store): alive.
        assert probes.get("/livez") == (200, {"status": "live"})
        redis.start()
        eventually(lambda: probes.ready() == (200, {"status": "ready"}))
        # A store that accepts connections but never answers: not ready within the probe's bound.
        redis.freeze()
        eventually(lambda: probes.ready()[0] == 503)
        status, body = probes.ready()
        assert any("store 'default' did not answer within" in r for r in body["reasons"]), body
        redis.thaw()
        eventually(lambda: probes.ready() == (200, {"status": "ready"}))
        _took, err = server.stop(signal.SIGTERM)
        assert server.proc.returncode == 0, err
        assert "readiness: store 'default' is unreachable" in err
        _clean(err)
    finally:
        redis.stop()


def test_readiness_fails_while_postgres_is_down_and_recovers(
    app_dir: Path, tmp_path: Path, stopped: list[Up]
) -> None:
    with pg.PostgresServer(tmp_path / "pg") as postgres:
        url = postgres.url(connect_timeout=1)
        (app_dir / "runtime-config.toml").write_text(
            f'[key_value_store.default]\ntype = "postgres"\nurl = "{url}"\n'
        )
        server, probes = _up(app_dir)
        stopped.append(server)
        probes.wait_ready()
        postgres.stop()
        eventually(lambda: probes.ready()[0] == 503)
        status, body = probes.ready()
        assert status == 503 and body["status"] == "not ready" and len(body["reasons"]) == 1, body
        assert body["reasons"][0].startswith("store 'default' "), body
        assert postgres.address not in json.dumps(body)
        assert probes.get("/livez") == (200, {"status": "live"})
        postgres.start()
        eventually(lambda: probes.ready() == (200, {"status": "ready"}))
        _, err = server.stop(signal.SIGTERM)
        assert server.proc.returncode == 0, err
        assert "readiness: store 'default' answers again" in err
        _clean(err)


def test_the_supervisor_is_ready_only_when_every_process_is(app_dir: Path, stopped: list[Up]) -> None:
    server, probes = _up(app_dir, "--processes", "2")
    stopped.append(server)
    probes.wait_ready()
    assert probes.get("/livez") == (200, {"status": "live"})
    children = [int(pid) for pid in _children(server.proc.pid)]
    assert len(children) == 2
    os.kill(children[1], signal.SIGKILL)
    # Dead, then starting again: not ready until it serves; alive all along
    # (restarting a child is the supervisor's job, not the orchestrator's).
    seen: set[str] = set()

    def not_ready() -> bool:
        status, body = probes.ready()
        seen.update(body.get("reasons", []))
        return status == 503

    eventually(not_ready)
    assert probes.get("/livez")[0] == 200
    probes.wait_ready()
    assert any(r.endswith((": not running (restarting)", ": starting")) for r in seen), seen
    # A process that is stuck (stopped outright) fails liveness, and readiness, by its index.
    children = [int(pid) for pid in _children(server.proc.pid)]
    os.kill(children[0], signal.SIGSTOP)
    try:
        status, body = probes.get("/livez")
        assert status == 503 and body["status"] == "not live", body
        assert len(body["reasons"]) == 1 and "did not answer within" in body["reasons"][0], body
        assert probes.ready()[0] == 503
    finally:
        os.kill(children[0], signal.SIGCONT)
    assert probes.get("/livez") == (200, {"status": "live"})
    _took, err = server.stop(signal.SIGTERM)
    assert server.proc.returncode == 0, err


def _children(pid: int) -> list[str]:
    import subprocess

    return subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()


def test_liveness_comes_from_the_event_loop() -> None:
    # A real event loop on a thread of its own, stuck in a callback for a while.
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        health = Health()
        assert health.liveness().ok  # not serving yet: nothing to be stuck
        health.serving(loop)
        assert health.liveness().ok and health.readiness().ok
        loop.call_soon_threadsafe(time.sleep, LOOP_WAIT * 4)
        time.sleep(0.05)
        verdict = health.liveness()
        assert not verdict.ok and "the event loop did not answer" in verdict.reasons[0]
        eventually(lambda: health.liveness().ok)
        health.stopping()
        assert health.readiness().reasons == ("shutting down",) and health.liveness().ok
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


def test_a_store_is_probed_at_most_once_a_second_and_a_hung_one_is_not_waited_for(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "kv.db")
    calls: list[float] = []

    def check() -> None:
        calls.append(time.monotonic())
        store.check()

    try:
        health = Health([StoreProbe("default", check)])
        verdicts = {health.readiness() for _ in range(50)}
        assert verdicts == {Verdict(False, ("starting",))}
        assert len(calls) == 1
        time.sleep(PROBE_INTERVAL)
        health.readiness()
        assert len(calls) == 2
    finally:
        store.close()
    # A store whose read never returns: readiness says so, each time, within the probe timeout.
    gate = threading.Event()
    hung = Health([StoreProbe("hung", lambda: gate.wait(60) and None)])
    try:
        for _ in range(3):
            reasons = hung.readiness().reasons
            assert reasons == ("starting", f"store 'hung' did not answer within {PROBE_TIMEOUT:g} s")
    finally:
        gate.set()


# --------------------------------------------------------------- draining


def _send_head(port: int, path: str, length: int) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", port), timeout=30)
    conn.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode())
    return conn


def _response(conn: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data or not _complete(data):
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


@pytest.mark.parametrize("processes", [1, 2], ids=["one-process", "two-processes"])
def test_sigterm_drains_in_flight_requests_and_loses_no_acknowledged_write(
    app_dir: Path, stopped: list[Up], processes: int
) -> None:
    server, probes = _up(app_dir, "--request-timeout", "10", "--processes", str(processes))
    stopped.append(server)
    probes.wait_ready()
    port = int(server.base.rsplit(":", 1)[1])
    with ThreadPoolExecutor(4) as pool:
        # In flight at SIGTERM: a request whose guest naps 3 s, and writes
        # whose bodies have not arrived yet.
        napping = pool.submit(httpx.get, server.base + "/hostile/nap", timeout=60)
        writers = [_send_head(port, "/hostile/count", 4) for _ in range(3)]
        time.sleep(1.0)
        sent = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        # Readiness turns 503 at once, naming why; then the port stops accepting.
        eventually(lambda: probes.ready()[0] == 503, timeout=5)
        assert "shutting down" in probes.ready()[1]["reasons"]
        eventually(lambda: _refused(port), timeout=5)
        answers = []
        for conn in writers:
            conn.sendall(b"body")
            answers.append(_response(conn))
            conn.close()
        nap = napping.result()
    _out, err = server.proc.communicate(timeout=60)
    took = time.monotonic() - sent
    assert server.proc.returncode == 0, err
    assert took < 10, (took, err)
    assert nap.status_code == 200 and nap.json() == {"slept": True}
    assert [status for status, _ in answers] == [200] * 3, answers
    hits = sorted(json.loads(body)["hits"] for _, body in answers)
    assert hits == [1, 2, 3]
    # Every write a client was told about is in the store.
    store = SqliteStore(app_dir / "kv.db")
    try:
        assert store.get("hits") == b"3"
    finally:
        store.close()
    _clean(err)


def test_with_a_drain_delay_the_port_serves_on_after_readiness_turned_503(
    app_dir: Path, stopped: list[Up]
) -> None:
    server, probes = _up(app_dir, "--drain-delay", "3")
    stopped.append(server)
    probes.wait_ready()
    port = int(server.base.rsplit(":", 1)[1])
    server.proc.send_signal(signal.SIGTERM)
    eventually(lambda: probes.ready()[0] == 503, timeout=5)
    # Not ready, and still serving new connections, for load balancers to notice first.
    with httpx.Client(base_url=server.base, timeout=10) as fresh:
        assert fresh.get("/hostile/ok").status_code == 200
    assert probes.ready()[0] == 503
    eventually(lambda: _refused(port), timeout=15)
    _, err = server.proc.communicate(timeout=60)
    assert server.proc.returncode == 0, err
    _clean(err)


def _feed_writes(store: SqliteStore, key: str) -> int:
    return sum(1 for change in store.changes(0, 10_000) if change.key == key)


@pytest.mark.parametrize("processes", [1, 2], ids=["one-process", "two-processes"])
def test_a_watcher_batch_in_progress_at_sigterm_finishes_and_is_not_redelivered(
    app_dir: Path, stopped: list[Up], processes: int
) -> None:
    store = SqliteStore(app_dir / "kv.db")
    try:
        server, probes = _up(app_dir, "--request-timeout", "10", "--processes", str(processes))
        stopped.append(server)
        probes.wait_ready()
        # One commit, so one batch: two changes whose deliveries nap 3 s each.
        store.set_many([("hostile/a/nap", b"1"), ("hostile/b/nap", b"2")])
        time.sleep(1.0)
        took, err = server.stop(signal.SIGTERM)
        assert server.proc.returncode == 0, err
        # The batch ran to its end (about 5 s more), within the drain timeout.
        assert 3 < took < 15, (took, err)
        assert store.get("seen/hostile/a/nap") is not None and store.get("seen/hostile/b/nap") is not None
        assert "2 changes (hostile/a/nap, hostile/b/nap) ok" in err, err
        # Its position was saved: a restart delivers what follows, and nothing twice.
        server, probes = _up(app_dir, "--request-timeout", "10", "--processes", str(processes))
        stopped.append(server)
        store.set("hostile/c/ok", b"3")
        eventually(lambda: store.get("seen/hostile/c/ok") is not None)
        took, err = server.stop(signal.SIGTERM)
        assert server.proc.returncode == 0, err
        assert _feed_writes(store, "seen/hostile/a/nap") == 1
        assert _feed_writes(store, "seen/hostile/b/nap") == 1
        _clean(err)
    finally:
        store.close()


def test_a_watcher_batch_cut_off_at_the_drain_timeout_is_delivered_again(
    app_dir: Path, stopped: list[Up]
) -> None:
    store = SqliteStore(app_dir / "kv.db")
    try:
        server, probes = _up(app_dir, "--request-timeout", "10", "--drain-timeout", "0.5")
        stopped.append(server)
        probes.wait_ready()
        store.set_many([("hostile/a/nap", b"1"), ("hostile/b/nap", b"2")])
        time.sleep(0.3)
        took, err = server.stop(signal.SIGTERM)
        assert server.proc.returncode == 0, err
        assert took < 8, (took, err)
        # Cut off in its first nap: nothing of the batch was delivered, and its
        # position stayed before it.
        assert store.get("seen/hostile/a/nap") is None and store.get("seen/hostile/b/nap") is None, err
        assert "stopped after 0" in err, err
        server, probes = _up(app_dir, "--request-timeout", "10")
        stopped.append(server)
        eventually(lambda: store.get("seen/hostile/b/nap") is not None)
        took, err = server.stop(signal.SIGTERM)
        assert server.proc.returncode == 0, err
        # At least once: the whole batch again after the restart.
        assert _feed_writes(store, "seen/hostile/a/nap") == 1
        assert _feed_writes(store, "seen/hostile/b/nap") == 1
        _clean(err)
    finally:
        store.close()
