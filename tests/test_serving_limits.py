"""What `wasikv up` owns at its edges: guest responses, the hostcall budget, slow clients."""

from __future__ import annotations

import io
import json
import shutil
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from wasikv import GuestTrap, Host

from .sandbox.test_up_hostile import MANIFEST, Up, start_up
from .support import COMPILE_CACHE, suite_wasm


@pytest.fixture(scope="module")
def hostile() -> Path:
    return suite_wasm()


@pytest.fixture
def app_dir(hostile: Path, tmp_path: Path) -> Path:
    shutil.copy(hostile, tmp_path / "hostile.wasm")
    (tmp_path / "wasikv.toml").write_text(MANIFEST)
    return tmp_path


@pytest.fixture
def up(app_dir: Path) -> Iterator[Up]:
    server = start_up(
        app_dir,
        "--workers",
        "2",
        "--header-timeout",
        "1",
        "--body-timeout",
        "1",
        "--keep-alive-timeout",
        "1",
        "--max-connections",
        "4",
    )
    yield server
    if server.proc.poll() is None:
        server.proc.kill()
        server.proc.communicate()


def _address(up: Up) -> tuple[str, int]:
    host, port = up.base.removeprefix("http://").split(":")
    return host, int(port)


def test_guest_responses_are_checked_and_framed_by_the_host(up: Up) -> None:
    with httpx.Client(base_url=up.base, timeout=30) as client:
        framed = client.get("/hostile/framing")
        # The guest's content-length (1000), transfer-encoding and connection
        # headers are dropped; the host frames the 10-byte body itself.
        assert framed.status_code == 200 and framed.content == b"short body"
        assert framed.headers["content-length"] == "10" and framed.headers["x-ok"] == "1"
        assert "transfer-encoding" not in framed.headers
        for path in ("/hostile/badheader", "/hostile/latin", "/hostile/badname"):
            broken = client.get(path)
            assert broken.status_code == 500 and broken.text == "Internal Server Error\n", path
        assert client.get("/hostile/ok").status_code == 200
    _, err = up.stop(signal.SIGINT)
    assert (
        "component hostile failed on GET /hostile/badheader: response header 'x-bad' has a value RFC 9110"
    ) in err
    assert "characters beyond Latin-1): 'Łukasz'" in err
    assert "response header name 'bad name' is not an RFC 9110 token" in err


def test_a_body_over_the_hostcall_budget_is_a_500_that_says_why(up: Up) -> None:
    with httpx.Client(base_url=up.base, timeout=30) as client:
        big = client.get("/hostile/bigbody")
        assert big.status_code == 500 and big.text == "Response Too Large\n"
    _, err = up.stop(signal.SIGINT)
    assert "response body of 3145728 bytes is over the 2621440 bytes one call can carry" in err


def test_batches_over_the_hostcall_budget(hostile: Path) -> None:
    with Host({"default": "memory:"}, cache_dir=COMPILE_CACHE) as host:
        # Through the SDK: refused in the guest before the call, as an error.
        out = io.BytesIO()
        assert host.run(hostile, ["bigbatch-sdk"], stdout=out) == 0
        assert (
            "hostcall budget: 3145728 bytes of values in one call > 2621440"
            in json.loads(out.getvalue())["error"]
        )
        # Raw bindings: wasmtime traps the call before wasikv sees it; the
        # trap says why.
        with pytest.raises(GuestTrap, match="more than wasmtime lets a call copy"):
            host.run(hostile, ["bigbatch"], stdout=io.BytesIO(), stderr=io.BytesIO())
        assert host.bucket().get("one") is None


def _closed_within(sock: socket.socket, seconds: float) -> float:
    sock.settimeout(seconds)
    started = time.monotonic()
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return time.monotonic() - started
        data += chunk
        if b"408" in data:
            return time.monotonic() - started


def test_slow_and_silent_clients_are_cut_off(up: Up) -> None:
    address = _address(up)
    # A connection that never sends anything.
    with socket.create_connection(address) as silent:
        assert _closed_within(silent, 5) < 3
    # Headers trickling in, one byte every 0.2 s.
    with socket.create_connection(address) as slow:
        started = time.monotonic()
        with pytest.raises(OSError):
            for byte in b"GET /hostile/ok HTTP/1.1\r\nHost: x\r\n" + b"x-pad: " + b"a" * 100:
                slow.sendall(bytes([byte]))
                time.sleep(0.2)
                if time.monotonic() - started > 6:
                    break
            slow.recv(1)  # the server has closed it by now
        assert time.monotonic() - started < 4
    # A body that never completes: 408, then the connection closes.
    with socket.create_connection(address) as stalled:
        stalled.sendall(b"POST /hostile/ok HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        stalled.settimeout(5)
        answer = stalled.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408 ")
    # An idle keep-alive connection is closed after the keep-alive timeout.
    with socket.create_connection(address) as idle:
        idle.sendall(b"GET /hostile/ok HTTP/1.1\r\nHost: x\r\n\r\n")
        idle.settimeout(5)
        assert idle.recv(4096).startswith(b"HTTP/1.1 200 ")
        assert _closed_within(idle, 5) < 3
    _, err = up.stop(signal.SIGINT)
    assert "no request headers within 1 s" in err


def test_connections_past_the_cap_get_503(up: Up) -> None:
    address = _address(up)
    held = [socket.create_connection(address) for _ in range(4)]
    try:
        time.sleep(0.2)
        with socket.create_connection(address) as extra:
            extra.sendall(b"GET /hostile/ok HTTP/1.1\r\nHost: x\r\n\r\n")
            extra.settimeout(5)
            assert extra.recv(4096).startswith(b"HTTP/1.1 503 ")
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    assert httpx.get(up.base + "/hostile/ok", timeout=10).status_code == 200
