"""`wasikv up` served by uvicorn, driven with a real HTTP client over loopback."""

from __future__ import annotations

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

from .support import COMPILE_CACHE, ROOT, guest_wasm

HTTP_WORLD = "wasikv:app/http-trigger"

MANIFEST = """\
spin_manifest_version = 2

[application]
name = "up-test"

[[trigger.http]]
route = "/counter"
component = "counter"

[[trigger.http]]
route = "/probe/..."
component = "probe"

[component.counter]
source = "counter.wasm"
key_value_stores = ["default"]

[component.probe]
source = "probe.wasm"
key_value_stores = ["default"]
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    shutil.copy(guest_wasm("examples/http-counter", HTTP_WORLD), tmp_path / "counter.wasm")
    shutil.copy(guest_wasm("http_probe", HTTP_WORLD), tmp_path / "probe.wasm")
    (tmp_path / "wasikv.toml").write_text(MANIFEST)
    (tmp_path / "runtime-config.toml").write_text('[key_value_store.other]\ntype = "memory"\n')
    return tmp_path


class Server:
    def __init__(self, proc: subprocess.Popen[str], base: str) -> None:
        self.proc = proc
        self.base = base


@pytest.fixture
def server(app_dir: Path) -> Iterator[Server]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "wasikv", "up", "--listen", f"127.0.0.1:{port}"],
        cwd=app_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "WASIKV_CACHE_DIR": str(COMPILE_CACHE)},
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240  # the first start compiles both components
    while True:
        try:
            httpx.get(base + "/nothing-here", timeout=1)
            break
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"server did not start: {proc.communicate()}") from None
            time.sleep(0.1)
    yield Server(proc, base)
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def test_concurrent_posts_count_exactly(server: Server) -> None:
    with httpx.Client(base_url=server.base, timeout=30) as client:
        with ThreadPoolExecutor(max_workers=32) as pool:
            statuses = list(pool.map(lambda _: client.post("/counter").status_code, range(200)))
        assert statuses == [200] * 200
        assert client.get("/counter").text == "200\n"


def test_routing_isolation_and_route_headers(server: Server) -> None:
    with httpx.Client(base_url=server.base, timeout=30) as client:
        assert client.get("/nope").status_code == 404
        assert client.get("/counter/extra").status_code == 404
        echo = client.get("/probe/a/b/echo?x=1", headers={"x-test": "yes"}).json()
        assert echo["route"] == "/probe/..." and echo["path_info"] == "/a/b/echo"
        assert echo["uri"] == "/probe/a/b/echo?x=1" and echo["query"] == {"x": "1"}
        assert echo["headers"]["x-test"] == "yes"
        assert echo["headers"]["spin-full-url"].endswith("/probe/a/b/echo?x=1")
        assert [client.get("/probe/echo").json()["requests_seen"] for _ in range(3)] == [1, 1, 1]


def test_trap_is_a_500_and_the_server_keeps_serving(server: Server) -> None:
    with httpx.Client(base_url=server.base, timeout=30) as client:
        assert client.get("/probe/trap").status_code == 500
        assert client.get("/probe/bad-status").status_code == 500
        assert client.post("/probe/count").status_code == 200


def test_grants_inside_an_app(server: Server) -> None:
    with httpx.Client(base_url=server.base, timeout=30) as client:
        assert client.get("/probe/open?label=default").text == "opened"
        assert client.get("/probe/open?label=other").text == "AccessDenied"
        assert client.get("/probe/open?label=nope").text == "NoSuchStore"


def test_access_log_and_clean_shutdown(server: Server) -> None:
    httpx.post(server.base + "/counter", timeout=30)
    server.proc.send_signal(signal.SIGINT)
    _, err = server.proc.communicate(timeout=30)
    assert server.proc.returncode == 0, err
    assert "POST /counter 200" in err


def test_a_grant_of_an_undefined_store_stops_loading(app_dir: Path) -> None:
    manifest = app_dir / "wasikv.toml"
    manifest.write_text(
        MANIFEST.replace(
            'key_value_stores = ["default"]\n\n[component.probe]',
            'key_value_stores = ["missing"]\n\n[component.probe]',
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "wasikv", "up", "--listen", f"127.0.0.1:{free_port()}"],
        cwd=app_dir,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "missing" in done.stderr and "wasikv.toml" in done.stderr
    assert "Traceback" not in done.stderr


def test_example_manifest_loads() -> None:
    from wasikv.app import load_app

    loaded = load_app(ROOT / "examples" / "http-counter" / "wasikv.toml", require_sources=False)
    assert loaded.grants["counter"] == frozenset({"default"})
    assert json.dumps(sorted(loaded.stores)) == '["default"]'
