"""Outbound HTTP from guests: wasmtime's client when allowed, `HTTP-request-denied` otherwise."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from wasikv import GuestTimeout, GuestTrap, Host
from wasikv.app.loader import load_app
from wasikv.triggers.http_app import HttpRoutes
from wasikv.triggers.http_component import HttpRequest

from .support import COMPILE_CACHE, foreign_guest_wasm, run_in, suite_wasm

pytestmark = pytest.mark.component


@dataclass
class Seen:
    """A request as the local server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    """A local HTTP server that records every request and answers 201 with `hello` (`/big`: 200 kB)."""

    url: str
    seen: list[Seen] = field(default_factory=list)


@pytest.fixture
def server() -> Iterator[Server]:
    recorded: list[Seen] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            headers = {name.lower(): value for name, value in self.headers.items()}
            recorded.append(Seen(self.command, self.path, headers, body))
            reply = b"hello" if self.path != "/big" else b"0123456789" * 20_000
            try:
                self.send_response(201)
                self.send_header("x-reply", "yes")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)
            except (BrokenPipeError, ConnectionResetError):
                pass  # a request the host gave up on (a body shorter than its content-length)

        do_POST = do_PUT = do_GET

        def log_message(self, *_args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{httpd.server_port}", recorded)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _fetch(host: Host, *args: str, outbound_http: bool) -> Any:
    out, err = io.BytesIO(), io.BytesIO()
    wasm = suite_wasm()
    code = host.run(wasm, ["probe", "fetch", *args], stdout=out, stderr=err, outbound_http=outbound_http)
    assert code == 0, err.getvalue().decode()
    return json.loads(out.getvalue().decode().splitlines()[-1])


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_an_allowed_guest_round_trips_a_request(make_host: Callable[..., Host], server: Server) -> None:
    host = make_host({"default": "memory:"})
    reply = _fetch(host, f"{server.url}/path/x?q=1&r=two", "PUT", "payload", outbound_http=True)
    assert reply == {
        "status": 201,
        "headers": {
            "server": reply["headers"]["server"],
            "date": reply["headers"]["date"],
            "x-reply": "yes",
            "content-length": "5",
        },
        "body": "hello",
    }
    [seen] = server.seen
    assert (seen.method, seen.path, seen.body) == ("PUT", "/path/x?q=1&r=two", b"payload")
    assert seen.headers["x-probe"] == "yes"
    assert seen.headers["content-length"] == "7"
    assert seen.headers["host"] == server.url.removeprefix("http://")


def test_bodies_larger_than_one_stream_chunk_arrive_whole(
    make_host: Callable[..., Host], server: Server
) -> None:
    sent = "abcdefghij" * 1_000  # over the 4096 bytes one blocking write may carry
    reply = _fetch(make_host({"default": "memory:"}), f"{server.url}/big", "POST", sent, outbound_http=True)
    assert reply["body"] == hashlib.sha256(b"0123456789" * 20_000).hexdigest()
    assert server.seen[0].body == sent.encode()


@pytest.mark.parametrize(
    ("headers", "code"),
    [({"content-length": "100"}, "HTTP-request-body-size"), ({"connection": "close"}, "header-error")],
)
def test_requests_the_host_refuses_are_clean_errors(
    make_host: Callable[..., Host], server: Server, headers: dict[str, str], code: str
) -> None:
    host = make_host({"default": "memory:"})
    reply = _fetch(host, server.url, "POST", "short", json.dumps(headers), outbound_http=True)
    assert reply["error"] == code


def test_without_outbound_http_every_request_is_denied(
    make_host: Callable[..., Host], server: Server
) -> None:
    host = make_host({"default": "memory:"})
    for _ in range(2):
        assert _fetch(host, server.url, "POST", "x", outbound_http=False) == {
            "error": "HTTP-request-denied",
            "message": "HTTP-request-denied",
        }
    # The same component allowed on the same host: its own linker, wasmtime's client.
    assert _fetch(host, server.url, outbound_http=True)["status"] == 201
    assert [seen.method for seen in server.seen] == ["GET"]


def test_host_run_denies_by_default(make_host: Callable[..., Host], server: Server) -> None:
    reply = run_in(make_host({"default": "memory:"}), "probe", ["fetch", server.url]).json()
    assert reply["error"] == "HTTP-request-denied"
    assert server.seen == []


@pytest.mark.parametrize(
    ("flag", "expected"), [([], "HTTP-request-denied"), (["--allow-outbound-http"], 201)]
)
def test_wasikv_run_allows_outbound_http_with_a_flag(
    tmp_path: Path, server: Server, flag: list[str], expected: object
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "wasikv", "run", *flag, str(suite_wasm()), "probe", "fetch", server.url],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"WASIKV_CACHE_DIR": str(COMPILE_CACHE), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout.splitlines()[-1])
    assert reply.get("status", reply.get("error")) == expected


def test_connection_refused_is_a_clean_error(make_host: Callable[..., Host]) -> None:
    host = make_host({"default": "memory:"})
    reply = _fetch(host, f"http://127.0.0.1:{_closed_port()}/", outbound_http=True)
    assert reply["error"] == "connection-refused"


def test_a_relative_url_is_a_value_error_in_the_guest(make_host: Callable[..., Host]) -> None:
    err = io.BytesIO()
    with pytest.raises(GuestTrap):  # an uncaught exception in a command traps
        make_host({"default": "memory:"}).run(suite_wasm(), ["probe", "fetch", "/relative"], stderr=err)
    assert "ValueError: send needs an absolute http:// or https:// URL" in err.getvalue().decode()


def test_a_component_without_wasi_http_imports_runs_either_way(make_host: Callable[..., Host]) -> None:
    # Built against a WIT without wasi:http, as every component built before it was added.
    host = make_host({"default": "memory:"})
    wasm = foreign_guest_wasm("keyvalue-0.2.0-draft")
    assert not [name for name in host.imports(host.load(wasm)) if name.startswith("wasi:http/")]
    for outbound_http in (False, True):
        assert host.run(wasm, ["set", "k", "v"], stdout=io.BytesIO(), outbound_http=outbound_http) == 0


MANIFEST = """\
[application]
name = "outbound"

[[trigger.http]]
route = "/open/..."
component = "open"

[[trigger.http]]
route = "/closed/..."
component = "closed"

[component.open]
source = "probe.wasm"
allowed_outbound_hosts = ["http://*:*", "https://*:*"]

[component.closed]
source = "probe.wasm"
"""


def test_app_components_get_outbound_http_from_their_manifest(
    tmp_path: Path, make_host: Callable[..., Host], server: Server
) -> None:
    (tmp_path / "probe.wasm").write_bytes(suite_wasm().read_bytes())
    (tmp_path / "wasikv.toml").write_text(MANIFEST)
    routes = HttpRoutes.from_app(load_app(tmp_path / "wasikv.toml"), make_host({"default": "memory:"}))

    def get(component: str) -> tuple[int, bytes]:
        response = routes.components[component].handle(
            HttpRequest("GET", f"/{component}/fetch?url={server.url}/from-{component}")
        )
        return response.status, response.body

    assert get("closed") == (502, b"HTTP-request-denied")
    assert get("open") == (200, b"201 hello")
    assert [seen.path for seen in server.seen] == ["/from-open"]


def test_a_silent_upstream_cannot_hold_a_run_past_its_timeout(make_host: Callable[..., Host]) -> None:
    # The guest waits for a response inside wasmtime's client (a host call
    # epochs cannot stop): the run still ends a second after its timeout.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/never"
        host = make_host({"default": "memory:"})
        started = time.monotonic()
        with pytest.raises(GuestTimeout):
            host.run(
                suite_wasm(), ["probe", "fetch", url], stderr=io.BytesIO(), outbound_http=True, timeout=1
            )
        assert time.monotonic() - started < 5
        silent.settimeout(5)
        connection, _ = silent.accept()  # the request did reach it
        connection.close()
