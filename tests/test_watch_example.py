"""examples/watch-audit, built and run: every change under notes/ lands in the audit log."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from wasikv import ComponentError, Host
from wasikv.app.loader import LoadedApp, load_app
from wasikv.capability import InstanceSpec
from wasikv.triggers.http_component import HttpComponent, HttpRequest
from wasikv.triggers.watch import WatchTriggers, position_name

from .support import COMPILE_CACHE, ROOT, guest_wasm

EXAMPLE = ROOT / "examples" / "watch-audit"
TIMEOUT = 60.0


@pytest.fixture(scope="module")
def built() -> dict[str, Path]:
    return {
        "notes": guest_wasm("examples/watch-audit", "wasikv:app/http-trigger", module="notes"),
        "audit": guest_wasm("examples/watch-audit", "wasikv:app/watch-trigger", module="audit"),
    }


@pytest.fixture
def app_dir(tmp_path: Path, built: dict[str, Path]) -> Path:
    """A copy of the example with its components built, so the repository stays clean."""
    for name in ("wasikv.toml", "runtime-config.toml", "notes.py", "audit.py"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    for module, wasm in built.items():
        shutil.copy(wasm, tmp_path / f"{module}.wasm")
    return tmp_path


@pytest.fixture
def host(app_dir: Path) -> Iterator[tuple[LoadedApp, Host]]:
    loaded = load_app(app_dir / "wasikv.toml")
    with Host(loaded.stores, cache_dir=COMPILE_CACHE) as host:
        yield loaded, host


def audit_log(host: Host) -> list[dict[str, Any]]:
    audit = host.bucket("audit")
    return [json.loads(audit.get(key) or b"null") for key in audit.keys("entry/")]


def caught_up(watchers: WatchTriggers) -> None:
    for runner in watchers.runners:
        assert runner.wait_for(runner.store.last_change(), TIMEOUT)


def test_every_change_under_notes_is_audited(host: tuple[LoadedApp, Host], app_dir: Path) -> None:
    loaded, wasikv_host = host
    watchers = WatchTriggers.from_app(loaded, wasikv_host, poll_interval=0.02)
    assert len(watchers) == 1
    notes = HttpComponent(
        wasikv_host,
        wasikv_host.load(app_dir / "notes.wasm"),
        name="notes",
        spec=InstanceSpec(grants=loaded.grants["notes"]),
    )

    def request(method: str, name: str, body: bytes = b"") -> int:
        return notes.handle(
            HttpRequest(method, f"/notes/{name}", [("spin-path-info", f"/{name}")], body)
        ).status

    with watchers:
        assert request("PUT", "shopping", b"milk") == 204
        assert request("PUT", "shopping", b"milk, eggs") == 204
        wasikv_host.bucket().set("settings/theme", b"dark")  # not under notes/: not audited
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "wasikv",
                "kv",
                "set",
                "--store",
                loaded.stores["default"],
                "notes/cli",
                "written by another process",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert request("DELETE", "shopping") == 204
        caught_up(watchers)
    assert [(e["op"], e["key"], e.get("preview")) for e in audit_log(wasikv_host)] == [
        ("set", "notes/shopping", "milk"),
        ("set", "notes/shopping", "milk, eggs"),
        ("set", "notes/cli", "written by another process"),
        ("delete", "notes/shopping", None),
    ]
    assert {e["store"] for e in audit_log(wasikv_host)} == {"default"}
    # The position is kept in the watched store itself, for the next start.
    store = wasikv_host.bucket().store
    assert store.load_position(position_name("watch-audit", "audit", "notes/")) == store.last_change()
    assert not (app_dir / ".wasikv" / "watch").exists()

    # Changes made while the app is down are audited at the next start, once.
    wasikv_host.bucket().set("notes/offline", b"while nobody watched")
    with WatchTriggers.from_app(loaded, wasikv_host, poll_interval=0.02) as again:
        caught_up(again)
    assert [e["key"] for e in audit_log(wasikv_host)][-2:] == ["notes/shopping", "notes/offline"]
    assert len(audit_log(wasikv_host)) == 5


def test_a_trigger_on_a_component_that_is_not_a_watcher_is_refused(app_dir: Path) -> None:
    manifest = app_dir / "wasikv.toml"
    manifest.write_text(
        manifest.read_text().replace('prefix = "notes/"\ncomponent = "audit"', 'component = "notes"')
    )
    loaded = load_app(manifest)
    with Host(loaded.stores, cache_dir=COMPILE_CACHE) as wasikv_host:
        with pytest.raises(
            ComponentError, match=r"watcher component 'notes'.*does not export wasi:keyvalue/watcher"
        ):
            WatchTriggers.from_app(loaded, wasikv_host)


def test_wasikv_up_runs_the_watcher(app_dir: Path) -> None:
    """The README's session: writes over HTTP and from `wasikv kv` land in the audit log."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "WASIKV_CACHE_DIR": str(COMPILE_CACHE)}
    server = subprocess.Popen(
        [sys.executable, "-m", "wasikv", "up", "--listen", f"127.0.0.1:{port}"],
        cwd=app_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                httpx.get(base + "/", timeout=1)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, server.communicate()
                time.sleep(0.1)
        assert httpx.put(base + "/notes/shopping", content=b"milk", timeout=30).status_code < 300
        subprocess.run(
            [
                sys.executable,
                "-m",
                "wasikv",
                "kv",
                "set",
                "--store",
                "sqlite:.wasikv/default.db",
                "notes/cli",
                "x",
            ],
            cwd=app_dir,
            env=env,
            check=True,
        )
        with Host({"audit": f"sqlite:{app_dir / '.wasikv' / 'audit.db'}"}, compile_cache=False) as host:
            deadline = time.monotonic() + TIMEOUT
            keys: list[str] = []
            while time.monotonic() < deadline:
                keys = [k for k in host.bucket("audit").keys("entry/")]
                if len(keys) >= 2:
                    break
                time.sleep(0.05)
            entries = [json.loads(host.bucket("audit").get(k) or b"null") for k in keys]
        assert [e["key"] for e in entries] == ["notes/shopping", "notes/cli"]
    finally:
        server.terminate()
        _, log = server.communicate(timeout=30)
    # The server's log (stderr) holds what the watcher printed and one line per
    # delivery, timestamped like the access log's request lines.
    lines = log.splitlines()
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} "
    assert any(re.fullmatch(stamp + r"PUT /notes/shopping 2\d\d [\d.]+ms", line) for line in lines), log
    for number, key in ((1, "notes/shopping"), (2, "notes/cli")):
        assert any(
            re.fullmatch(stamp + rf"\[audit\] audited set {key} as entry/0*{number}", line) for line in lines
        ), log
        assert any(
            re.fullmatch(stamp + rf"watch default:notes/\* -> audit: 1 change \({key}\) ok [\d.]+ms", line)
            for line in lines
        ), log


SERVICE = """\
import logging

from wasikv import create_app

{configure}
app = create_app("wasikv.toml")
"""


def _uvicorn_log(app_dir: Path, configure: str = "") -> str:
    """The stderr of `uvicorn service:app` serving the example through `create_app`, after one note."""
    (app_dir / "service.py").write_text(SERVICE.format(configure=configure))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "service:app", "--port", str(port), "--no-access-log"],
        cwd=app_dir,
        env={**os.environ, "WASIKV_CACHE_DIR": str(COMPILE_CACHE)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                httpx.get(base + "/", timeout=1)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, server.communicate()
                time.sleep(0.1)
        assert httpx.put(base + "/notes/shopping", content=b"milk", timeout=30).status_code < 300
        with Host({"audit": f"sqlite:{app_dir / '.wasikv' / 'audit.db'}"}, compile_cache=False) as host:
            deadline = time.monotonic() + TIMEOUT
            while not list(host.bucket("audit").keys("entry/")) and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        server.terminate()
        _, log = server.communicate(timeout=30)
    return log


def test_an_app_under_plain_uvicorn_logs_its_watcher_as_up_does(app_dir: Path) -> None:
    lines = _uvicorn_log(app_dir).splitlines()
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} "
    expected = (
        r"PUT /notes/shopping 2\d\d [\d.]+ms",
        r"\[audit\] audited set notes/shopping as entry/0*1",
        r"watch default:notes/\* -> audit: 1 change \(notes/shopping\) ok [\d.]+ms",
    )
    for pattern in expected:
        assert sum(bool(re.fullmatch(stamp + pattern, line)) for line in lines) == 1, (pattern, lines)


def test_an_app_under_plain_uvicorn_logs_where_the_service_configured(app_dir: Path) -> None:
    configure = 'logging.basicConfig(level=logging.INFO, format="service: %(name)s %(message)s")'
    lines = _uvicorn_log(app_dir, configure).splitlines()
    # Once each, through the service's own handler.
    assert lines.count("service: wasikv.guest [audit] audited set notes/shopping as entry/00000001") == 1
    deliveries = [line for line in lines if "-> audit: 1 change (notes/shopping) ok" in line]
    assert len(deliveries) == 1 and deliveries[0].startswith("service: wasikv.watch.deliveries watch ")
