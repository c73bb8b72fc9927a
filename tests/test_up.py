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

from .support import COMPILE_CACHE, ROOT, guest_wasm, suite_wasm

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
    shutil.copy(suite_wasm(), tmp_path / "probe.wasm")
    (tmp_path / "wasikv.toml").write_text(MANIFEST)
    (tmp_path / "runtime-config.toml").write_text('[key_value_store.other]\ntype = "memory"\n')
    return tmp_path


class Server:
    def __init__(self, proc: subprocess.Popen[str], base: str) -> None:
        self.proc = proc
        self.base = base


def _environ() -> dict[str, str]:
    """This environment without application variables (the runner's own would leak into the apps)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("WASIKV_VARIABLE_", "SPIN_VARIABLE_"))}


def start(app_dir: Path, *args: str, env: dict[str, str] | None = None) -> Server:
    """`wasikv up ARGS...` in `app_dir`, once it answers requests."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "wasikv", "up", "--listen", f"127.0.0.1:{port}", *args],
        cwd=app_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**_environ(), **(env or {}), "WASIKV_CACHE_DIR": str(COMPILE_CACHE)},
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
    return Server(proc, base)


@pytest.fixture
def server(app_dir: Path) -> Iterator[Server]:
    started = start(app_dir)
    yield started
    if started.proc.poll() is None:
        started.proc.kill()
        started.proc.communicate()


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


VARIABLES = """
[variables]
greeting = { default = "hello" }
api_key = { required = true, secret = true }
region = { required = true }
tier = { required = true }

[component.probe.variables]
banner = "{{ greeting }} from {{ region }}/{{ tier }}"
key = "{{ api_key }}"
"""
SECRET = "s3cr3t-in-the-flag"


def up_once(app_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wasikv", "up", "--listen", f"127.0.0.1:{free_port()}", *args],
        cwd=app_dir,
        capture_output=True,
        text=True,
        timeout=60,
        env={**_environ(), **(env or {})},
    )


def test_a_required_variable_without_a_value_stops_up_before_serving(tmp_path: Path) -> None:
    (tmp_path / "wasikv.toml").write_text(MANIFEST + VARIABLES)
    for name in ("counter.wasm", "probe.wasm"):  # never loaded: the variables stop it first
        (tmp_path / name).write_bytes(b"")
    env = {"WASIKV_VARIABLE_REGION": "eu", "SPIN_VARIABLE_TIER": "free"}
    done = up_once(tmp_path, "--variable", f"greeting={SECRET}", env=env)
    assert done.returncode == 1, done
    assert "Serving" not in done.stdout and "Traceback" not in done.stderr
    assert done.stderr.count("Error:") == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "required variable 'api_key' has no value" in done.stderr
    assert "--variable api_key=VALUE" in done.stderr and "WASIKV_VARIABLE_API_KEY" in done.stderr
    assert SECRET not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("flag", "fragment"),
    [
        (f"API_KEY={SECRET}", "Error: --variable 'API_KEY'=...: the name is invalid"),
        ("api_key", "Error: --variable 'api_key' has no '='"),
        (f"nope={SECRET}", "declares no variable 'nope'"),
    ],
)
def test_a_malformed_variable_flag_is_one_clear_error(tmp_path: Path, flag: str, fragment: str) -> None:
    (tmp_path / "wasikv.toml").write_text(MANIFEST + VARIABLES)
    for name in ("counter.wasm", "probe.wasm"):
        (tmp_path / name).write_bytes(b"")
    done = up_once(tmp_path, "--variable", flag)
    assert done.returncode == 1 and fragment in done.stderr, done.stderr
    assert SECRET not in done.stdout + done.stderr


def test_variables_reach_the_guest_from_every_source(app_dir: Path) -> None:
    (app_dir / "wasikv.toml").write_text(MANIFEST + VARIABLES)
    (app_dir / ".env").write_text("SPIN_VARIABLE_TIER=from-dotenv\nWASIKV_VARIABLE_REGION=loses\n")
    server = start(app_dir, "--variable", f"api_key={SECRET}", env={"WASIKV_VARIABLE_REGION": "eu"})
    try:
        with httpx.Client(base_url=server.base, timeout=30) as client:
            report = client.get("/probe/variables?name=banner").json()
        assert report["get"] == "hello from eu/from-dotenv"
        assert report["all"] == {"banner": "hello from eu/from-dotenv", "key": SECRET}
    finally:
        server.proc.send_signal(signal.SIGINT)
        out, err = server.proc.communicate(timeout=30)
    assert SECRET not in out + err


def test_example_manifest_loads() -> None:
    from wasikv.app import load_app

    loaded = load_app(ROOT / "examples" / "http-counter" / "wasikv.toml", require_sources=False)
    assert loaded.grants["counter"] == frozenset({"default"})
    assert json.dumps(sorted(loaded.stores)) == '["default"]'
