"""Outbound HTTP from guests: wasikv's own client, only where `allowed_outbound_hosts` allows.

Every test talks to real local servers: a recording HTTP server, and bare
listening sockets that accept nothing, to show that a denied request never
even opens a connection (a connection attempt would be waiting in the
socket's backlog).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from wasikv import GuestTimeout, GuestTrap, Host, create_app
from wasikv.app.loader import load_app
from wasikv.app.variable_sources import VariableSources
from wasikv.errors import ConfigError
from wasikv.interfaces.wasi.http.sender import MAX_IN_FLIGHT
from wasikv.triggers.http_app import HttpRoutes
from wasikv.triggers.http_component import HttpRequest

from .support import COMPILE_CACHE, foreign_guest_wasm, suite_wasm
from .test_up import start
from .wasi_http_support import spin_python_app

pytestmark = pytest.mark.component

BIG_REPLY = b"0123456789" * 20_000


@dataclass
class Seen:
    """A request as the local server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    """A local HTTP server that records every request.

    It answers 201 `hello`; `/echo` the request body; `/big` 200 kB;
    `/redirect` a 302 to `/elsewhere`; `/huge-headers` 300 headers.
    """

    port: int
    seen: list[Seen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _answer(handler: BaseHTTPRequestHandler, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    path = handler.path
    if path == "/echo":
        return 200, [], body
    if path == "/big":
        return 200, [], BIG_REPLY
    if path == "/redirect":
        return 302, [("location", "/elsewhere")], b"moved"
    if path == "/huge-headers":
        return 200, [(f"x-h{i}", "v" * 200) for i in range(300)], b"ok"
    return 201, [("x-reply", "yes")], b"hello"


@contextmanager
def recording_server() -> Iterator[Server]:
    recorded: list[Seen] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            headers = {name.lower(): value for name, value in self.headers.items()}
            recorded.append(Seen(self.command, self.path, headers, body))
            status, extra, reply = _answer(self, body)
            try:
                self.send_response(status)
                for name, value in extra:
                    self.send_header(name, value)
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)
            except (BrokenPipeError, ConnectionResetError):
                pass  # a request the client gave up on

        do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

        def log_message(self, *_args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(httpd.server_port, recorded)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
def server() -> Iterator[Server]:
    with recording_server() as started:
        yield started


@pytest.fixture
def silent() -> Iterator[socket.socket]:
    """A listening socket nobody accepts on: a connection attempt stays in its backlog."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield sock


def port_of(sock: socket.socket) -> int:
    port: int = sock.getsockname()[1]
    return port


def assert_never_connected(sock: socket.socket) -> None:
    """Nothing tried to connect to `sock` (its backlog is empty)."""
    sock.setblocking(False)
    with pytest.raises(BlockingIOError):
        connection, _ = sock.accept()
        connection.close()


def fetch(host: Host, allowed: Sequence[str], url: str, *args: str, **run: Any) -> Any:
    """The probe guest's `fetch URL [METHOD [BODY [HEADERS]]]` report (JSON) under `allowed`."""
    out, err = io.BytesIO(), io.BytesIO()
    argv = ["probe", "fetch", url, *args]
    code = host.run(suite_wasm(), argv, stdout=out, stderr=err, allowed_outbound_hosts=allowed, **run)
    assert code == 0, err.getvalue().decode()
    return json.loads(out.getvalue().decode().splitlines()[-1])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


DENIED = {"error": "HTTP-request-denied", "message": "HTTP-request-denied"}


# ------------------------------------------------------------- allowed


def test_an_allowed_host_gets_the_request_and_the_guest_its_answer(
    make_host: Callable[..., Host], server: Server
) -> None:
    host = make_host({"default": "memory:"})
    headers = json.dumps({"x-custom": "a b", "accept": "text/plain"})
    reply = fetch(host, [server.url], f"{server.url}/path/x?q=1&r=two", "PUT", "payload", headers)
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
    assert (seen.headers["x-probe"], seen.headers["x-custom"], seen.headers["accept"]) == (
        "yes",
        "a b",
        "text/plain",
    )
    assert seen.headers["content-length"] == "7"
    assert seen.headers["host"] == f"127.0.0.1:{server.port}"


def test_large_bodies_stream_both_ways(make_host: Callable[..., Host], server: Server) -> None:
    # Both are many times the client's and the guest's 64 KiB buffers.
    sent = "".join(chr(97 + i % 26) for i in range(600_000))
    host = make_host({"default": "memory:"})
    echoed = fetch(host, [server.url], f"{server.url}/echo", "POST", sent)
    assert echoed["status"] == 200 and echoed["body"] == hashlib.sha256(sent.encode()).hexdigest()
    assert server.seen[0].body == sent.encode()
    big = fetch(host, [server.url], f"{server.url}/big")
    assert big["body"] == hashlib.sha256(BIG_REPLY).hexdigest()
    assert big["headers"]["content-length"] == str(len(BIG_REPLY))


@pytest.mark.parametrize(
    "entry",
    [
        "*://*:*",
        "http://*:*",
        "http://127.0.0.1:*",
        "*://127.0.0.1:{port}",
        "http://127.0.0.1:{port}..{after}",
        "http://127.0.0.0/8:{port}",
        "http://127.0.0.1:{port}/",
    ],
)
def test_wildcards_ranges_and_networks_allow_the_server(
    make_host: Callable[..., Host], server: Server, entry: str
) -> None:
    allowed = [entry.format(port=server.port, after=server.port + 1)]
    assert fetch(make_host({"default": "memory:"}), allowed, server.url)["status"] == 201
    assert [seen.path for seen in server.seen] == ["/"]


def test_another_spelling_of_an_allowed_address_is_that_address(
    make_host: Callable[..., Host], server: Server
) -> None:
    # As in Spin, hosts compare as URL hosts: 0x7f.1 is 127.0.0.1.
    reply = fetch(make_host({"default": "memory:"}), [server.url], f"http://0x7f.1:{server.port}/spelled")
    assert reply["status"] == 201
    assert server.seen[0].headers["host"] == f"0x7f.1:{server.port}"


def test_a_redirect_is_passed_to_the_guest_not_followed(
    make_host: Callable[..., Host], server: Server
) -> None:
    reply = fetch(make_host({"default": "memory:"}), [server.url], f"{server.url}/redirect")
    assert (reply["status"], reply["headers"]["location"], reply["body"]) == (302, "/elsewhere", "moved")
    assert [seen.path for seen in server.seen] == ["/redirect"]


def test_proxy_variables_of_the_host_are_ignored(
    make_host: Callable[..., Host], server: Server, silent: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = f"http://127.0.0.1:{port_of(silent)}"
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert fetch(make_host({"default": "memory:"}), [server.url], f"{server.url}/direct")["status"] == 201
    assert [seen.path for seen in server.seen] == ["/direct"]
    assert_never_connected(silent)


# -------------------------------------------------------------- denied


@pytest.mark.parametrize(
    ("entries", "why"),
    [
        ([], "nothing allowed"),
        (["http://127.0.0.1:{other}"], "another port"),
        (["https://127.0.0.1:{port}"], "another scheme"),
        (["http://localhost:{port}"], "another host (names are not resolved to compare)"),
        (["http://127.0.0.1:{before}..{port}"], "a range excludes its end"),
        (["http://*.example.com:*", "https://*:*"], "a subdomain wildcard, https only"),
        (["http://10.0.0.0/8:*"], "another network"),
        (["http://self"], "the app itself only"),
    ],
)
def test_a_denied_request_opens_no_connection(
    make_host: Callable[..., Host], silent: socket.socket, entries: list[str], why: str
) -> None:
    port = port_of(silent)
    allowed = [entry.format(port=port, other=_free_port(), before=port - 10) for entry in entries]
    assert (
        fetch(make_host({"default": "memory:"}), allowed, f"http://127.0.0.1:{port}/x", "POST", "x") == DENIED
    )
    assert_never_connected(silent)


def test_a_guest_trying_many_destinations_reaches_only_the_allowed_one(
    make_host: Callable[..., Host], server: Server, silent: socket.socket
) -> None:
    host = make_host({"default": "memory:"})
    allowed = [server.url]
    other = port_of(silent)
    destinations = [
        f"http://127.0.0.1:{other}/",
        f"http://127.0.0.2:{server.port}/",
        f"http://localhost:{server.port}/",
        f"http://localhost.:{other}/",
        f"http://[::1]:{server.port}/",
        f"http://[::ffff:127.0.0.1]:{server.port}/",
        f"http://2130706433:{other}/",
        f"http://0x7f.0.0.1:{other}/",
        f"http://0177.0.0.1:{other}/",
        f"https://127.0.0.1:{server.port}/",
        f"http://127.0.0.1:{server.port + 1}/",
        f"http://service.spin.internal:{server.port}/",
        f"http://example.com:{server.port}/",
        "http://127.0.0.1/",
        "https://127.0.0.1/",
    ]
    for url in destinations:
        assert fetch(host, allowed, url) == DENIED, url
    assert fetch(host, allowed, f"{server.url}/the-only-one")["status"] == 201
    assert [seen.path for seen in server.seen] == ["/the-only-one"]
    assert_never_connected(silent)


def _flood(host: Host, allowed: Sequence[str], url: str, count: int, *then: str) -> Any:
    out, err = io.BytesIO(), io.BytesIO()
    code = host.run(
        suite_wasm(),
        ["probe", "flood", url, str(count), *then],
        stdout=out,
        stderr=err,
        allowed_outbound_hosts=allowed,
    )
    assert code == 0, err.getvalue().decode()
    return json.loads(out.getvalue().decode().splitlines()[-1])


def test_a_guest_holding_many_requests_is_capped_and_its_connections_closed(
    make_host: Callable[..., Host], server: Server, silent: socket.socket
) -> None:
    host = make_host({"default": "memory:"})
    url = f"http://127.0.0.1:{port_of(silent)}/"
    # Never answered, never read: each stays under way until the command ends.
    # At the cap, a request the policy refuses is still told so.
    assert _flood(host, ["http://127.0.0.1:*"], url, MAX_IN_FLIGHT + 50, "http://example.com/") == {
        "started": MAX_IN_FLIGHT,
        "refused": {"ErrorCode_InternalError": 50},
        "then": "ErrorCode_HttpRequestDenied",
    }
    # The instance is gone: every connection it opened is closed (the backlog holds the first ones).
    silent.settimeout(30)
    for _ in range(10):
        connection, _ = silent.accept()
        with connection:
            connection.settimeout(30)
            while connection.recv(65536):
                pass  # its request head, then the end
    # Refused requests never count: a denied flood starts nothing and connects nowhere.
    assert _flood(host, [server.url], url, 1000) == {
        "started": 0,
        "refused": {"ErrorCode_HttpRequestDenied": 1000},
    }
    assert fetch(host, [server.url], f"{server.url}/after-the-flood")["status"] == 201


def test_a_body_written_after_the_answer_is_taken(make_host: Callable[..., Host], server: Server) -> None:
    """An upstream answers a GET before the guest finishes its (empty) body: its writes still succeed.

    componentize-py's and Spin's `send` start the request and write its body
    side by side; which comes first is a matter of timing.
    """
    host = make_host({"default": "memory:"})
    out, err = io.BytesIO(), io.BytesIO()
    code = host.run(
        suite_wasm(),
        ["probe", "late-body", f"{server.url}/late"],
        stdout=out,
        stderr=err,
        allowed_outbound_hosts=[server.url],
    )
    assert code == 0, err.getvalue().decode()
    assert json.loads(out.getvalue().decode().splitlines()[-1]) == {"status": 201, "body": "ok"}


def test_malformed_urls_are_clean_errors(
    make_host: Callable[..., Host], server: Server, silent: socket.socket
) -> None:
    host = make_host({"default": "memory:"})
    port = port_of(silent)
    allowed = ["*://*:*"]
    for url in [
        f"http://127.0.0.1:{port}:{port}/",
        "http://127.0.0.1:99999/",
        "http://exa mple.com/",
        "http://%zz/",
        "http://a\x7fb/",
    ]:
        assert fetch(host, allowed, url)["error"] == "HTTP-request-URI-invalid", url
    assert_never_connected(silent)
    assert fetch(host, allowed, f"{server.url}/still-fine")["status"] == 201


def test_a_relative_url_is_a_value_error_in_the_guest(make_host: Callable[..., Host]) -> None:
    err = io.BytesIO()
    with pytest.raises(GuestTrap):  # an uncaught exception in a command traps
        make_host({"default": "memory:"}).run(
            suite_wasm(), ["probe", "fetch", "/relative"], stderr=err, allowed_outbound_hosts=["*://*:*"]
        )
    assert "ValueError: send needs an absolute http:// or https:// URL" in err.getvalue().decode()


# ------------------------------------------------------------ failures


def test_connection_refused_is_a_clean_error(make_host: Callable[..., Host]) -> None:
    reply = fetch(
        make_host({"default": "memory:"}), ["http://127.0.0.1:*"], f"http://127.0.0.1:{_free_port()}/"
    )
    assert reply["error"] == "connection-refused"


@pytest.mark.parametrize(
    ("headers", "code"),
    [({"content-length": "100"}, "HTTP-request-body-size"), ({"connection": "close"}, "header-error")],
)
def test_requests_the_host_refuses_are_clean_errors(
    make_host: Callable[..., Host], server: Server, headers: dict[str, str], code: str
) -> None:
    host = make_host({"default": "memory:"})
    reply = fetch(host, [server.url], server.url, "POST", "short", json.dumps(headers))
    assert reply["error"] == code


def test_huge_response_headers_are_a_clean_error(make_host: Callable[..., Host], server: Server) -> None:
    reply = fetch(make_host({"default": "memory:"}), [server.url], f"{server.url}/huge-headers")
    assert reply["error"] == "HTTP-response-header-section-size"


def test_a_huge_request_header_traps_only_its_guest(make_host: Callable[..., Host], server: Server) -> None:
    host = make_host({"default": "memory:"})
    with pytest.raises(GuestTrap):
        fetch(host, [server.url], server.url, "GET", "", json.dumps({"x-huge": "h" * 200_000}))
    assert server.seen == []
    assert fetch(host, [server.url], f"{server.url}/after")["status"] == 201


def test_a_silent_upstream_is_stopped_by_the_run_timeout(
    make_host: Callable[..., Host], silent: socket.socket
) -> None:
    # The guest waits for the response in a Python pollable, which its deadline interrupts.
    url = f"http://127.0.0.1:{port_of(silent)}/never"
    host = make_host({"default": "memory:"})
    with pytest.raises(GuestTimeout):
        host.run(
            suite_wasm(),
            ["probe", "fetch", url],
            stderr=io.BytesIO(),
            allowed_outbound_hosts=["http://127.0.0.1:*"],
            timeout=1,
        )
    silent.settimeout(30)
    connection, _ = silent.accept()  # the request did reach it
    connection.close()
    # The host's client is still usable: closing it ends the abandoned exchange.
    host.close()


# --------------------------------------------------------- Host and CLI


def test_run_denies_by_default_and_outbound_http_still_means_every_host(
    make_host: Callable[..., Host], server: Server
) -> None:
    host = make_host({"default": "memory:"})
    out = io.BytesIO()
    assert host.run(suite_wasm(), ["probe", "fetch", server.url], stdout=out) == 0
    assert json.loads(out.getvalue().decode().splitlines()[-1]) == DENIED
    out = io.BytesIO()
    assert host.run(suite_wasm(), ["probe", "fetch", server.url], stdout=out, outbound_http=True) == 0
    assert json.loads(out.getvalue().decode().splitlines()[-1])["status"] == 201
    assert len(server.seen) == 1


@pytest.mark.parametrize(
    ("allowed", "message"),
    [
        (["example.com"], 'allowed_outbound_hosts entry "example.com": it has no scheme'),
        ("https://example.com", "must be a list of entries, not the string"),
        ([443], "entries must be strings, not int"),
        (["https://{{ host }}"], "uses variables"),
    ],
)
def test_run_refuses_bad_entries(make_host: Callable[..., Host], allowed: Any, message: str) -> None:
    with pytest.raises(ConfigError, match="allowed_outbound_hosts") as caught:
        make_host({"default": "memory:"}).run(suite_wasm(), ["probe"], allowed_outbound_hosts=allowed)
    assert message in str(caught.value)


def test_a_component_without_wasi_http_imports_runs_either_way(make_host: Callable[..., Host]) -> None:
    # Built against a WIT without wasi:http, as every component built before it was added.
    host = make_host({"default": "memory:"})
    wasm = foreign_guest_wasm("keyvalue-0.2.0-draft")
    assert not [name for name in host.imports(host.load(wasm)) if name.startswith("wasi:http/")]
    for allowed in ([], ["*://*:*"]):
        assert host.run(wasm, ["set", "k", "v"], stdout=io.BytesIO(), allowed_outbound_hosts=allowed) == 0


def _wasikv_run(tmp_path: Path, flags: list[str], url: str, env: dict[str, str] | None = None) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "wasikv", "run", *flags, str(suite_wasm()), "probe", "fetch", url],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"WASIKV_CACHE_DIR": str(COMPILE_CACHE), "PATH": "/usr/bin:/bin", **(env or {})},
    )
    return done


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ([], "HTTP-request-denied"),
        (["--allow-outbound", "https://127.0.0.1:{port}"], "HTTP-request-denied"),
        (["--allow-outbound", "http://example.com", "--allow-outbound", "http://127.0.0.1:{port}"], 201),
        (["--allow-outbound-http"], 201),
    ],
)
def test_wasikv_run_allows_outbound_hosts_with_flags(
    tmp_path: Path, server: Server, silent: socket.socket, flags: list[str], expected: object
) -> None:
    # HTTP_PROXY in wasikv's environment changes nothing either.
    proxy = {"HTTP_PROXY": f"http://127.0.0.1:{port_of(silent)}"}
    done = _wasikv_run(tmp_path, [flag.format(port=server.port) for flag in flags], server.url, proxy)
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout.splitlines()[-1])
    assert reply.get("status", reply.get("error")) == expected
    assert len(server.seen) == (1 if expected == 201 else 0)
    assert_never_connected(silent)


def test_wasikv_run_names_a_bad_allow_outbound_entry(tmp_path: Path, server: Server) -> None:
    done = _wasikv_run(tmp_path, ["--allow-outbound", "127.0.0.1:80"], server.url)
    assert done.returncode != 0
    assert '--allow-outbound: allowed_outbound_hosts entry "127.0.0.1:80"' in done.stderr
    assert "Traceback" not in done.stderr


# ----------------------------------------------------------------- apps


MANIFEST = """\
[application]
name = "outbound"

[variables]
upstream_port = { required = true }

[[trigger.http]]
route = "/open/..."
component = "open"

[[trigger.http]]
route = "/closed/..."
component = "closed"

[component.open]
source = "probe.wasm"
allowed_outbound_hosts = ["http://127.0.0.1:{{ upstream_port }}"]

[component.closed]
source = "probe.wasm"
"""


def test_app_components_reach_only_their_manifests_hosts(
    tmp_path: Path, make_host: Callable[..., Host], server: Server, silent: socket.socket
) -> None:
    (tmp_path / "probe.wasm").write_bytes(suite_wasm().read_bytes())
    (tmp_path / "wasikv.toml").write_text(MANIFEST)
    sources = VariableSources(flags={"upstream_port": str(server.port)}, environ={})
    loaded = load_app(tmp_path / "wasikv.toml", variables=sources)
    routes = HttpRoutes.from_app(loaded, make_host({"default": "memory:"}))

    def get(component: str, url: str) -> tuple[int, bytes]:
        response = routes.components[component].handle(HttpRequest("GET", f"/{component}/fetch?url={url}"))
        return response.status, response.body

    assert get("closed", f"{server.url}/from-closed") == (502, b"HTTP-request-denied")
    assert get("open", f"{server.url}/from-open") == (200, b"201 hello")
    assert get("open", f"http://127.0.0.1:{port_of(silent)}/") == (502, b"HTTP-request-denied")
    assert [seen.path for seen in server.seen] == ["/from-open"]
    assert_never_connected(silent)


def test_a_request_timeout_stops_a_handler_waiting_on_a_silent_upstream(
    tmp_path: Path, make_host: Callable[..., Host], silent: socket.socket
) -> None:
    (tmp_path / "probe.wasm").write_bytes(suite_wasm().read_bytes())
    (tmp_path / "wasikv.toml").write_text(MANIFEST)
    sources = VariableSources(flags={"upstream_port": str(port_of(silent))}, environ={})
    routes = HttpRoutes.from_app(
        load_app(tmp_path, variables=sources), make_host({"default": "memory:"}), timeout=1
    )
    with pytest.raises(GuestTimeout):
        routes.components["open"].handle(
            HttpRequest("GET", f"/open/fetch?url=http://127.0.0.1:{port_of(silent)}/")
        )


SPIN_MANIFEST = """\
spin_manifest_version = 2

[application]
name = "spin-outbound"

[variables]
upstream_url = {{ default = "http://127.0.0.1:1/" }}
upstream_host = {{ default = "127.0.0.1" }}
upstream_port = {{ default = "1" }}

[[trigger.http]]
route = "/..."
component = "relay"

[component.relay]
source = "app.wasm"
allowed_outbound_hosts = [{allowed}]

[component.relay.variables]
upstream_url = "{{{{ upstream_url }}}}"
"""


def _spin_app(tmp_path: Path, allowed: str) -> Path:
    (tmp_path / "app.wasm").write_bytes(spin_python_app("outbound").read_bytes())
    (tmp_path / "wasikv.toml").write_text(SPIN_MANIFEST.format(allowed=allowed))
    return tmp_path


def _relay(client: httpx.Client, url: str) -> tuple[int, dict[str, Any]]:
    response = client.get("/", headers={"x-upstream-url": url})
    return response.status_code, response.json()


def test_a_spin_sdk_app_sends_through_create_app_only_where_allowed(
    tmp_path: Path, server: Server, silent: socket.socket
) -> None:
    app_dir = _spin_app(tmp_path, f'"http://127.0.0.1:{server.port}"')
    app = create_app(app_dir / "wasikv.toml", cache_dir=COMPILE_CACHE)
    transport = httpx.ASGITransport(app=app)

    async def relay(url: str) -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/", headers={"x-upstream-url": url})

    allowed = asyncio.run(relay(f"{server.url}/from-spin"))
    assert allowed.status_code == 200
    assert allowed.json() == {
        "url": f"{server.url}/from-spin",
        "status": 201,
        "content_type": None,
        "body": "hello",
    }
    assert server.seen[0].headers["user-agent"] == "spin-outbound-test"
    denied = asyncio.run(relay(f"http://127.0.0.1:{port_of(silent)}/"))
    assert denied.status_code == 502
    assert denied.json()["error"] == "ErrorCode_HttpRequestDenied"
    assert [seen.path for seen in server.seen] == ["/from-spin"]
    assert_never_connected(silent)


def test_a_spin_sdk_app_under_wasikv_up_with_a_variable_entry(
    tmp_path: Path, server: Server, silent: socket.socket
) -> None:
    app_dir = _spin_app(tmp_path, '"http://{{ upstream_host }}:{{ upstream_port }}"')
    proxy = f"http://127.0.0.1:{port_of(silent)}"
    up = start(
        app_dir,
        "--variable",
        f"upstream_port={server.port}",
        "--variable",
        f"upstream_url={server.url}/by-variable",
        env={"HTTP_PROXY": proxy, "http_proxy": proxy},
    )
    try:
        with httpx.Client(base_url=up.base, timeout=60) as client:
            answer = client.get("/")
            assert answer.status_code == 200, answer.text
            assert (answer.json()["status"], answer.json()["body"]) == (201, "hello")
            assert (
                _relay(client, f"http://127.0.0.1:{port_of(silent)}/")[1]["error"]
                == "ErrorCode_HttpRequestDenied"
            )
            assert (
                _relay(client, f"http://localhost:{server.port}/")[1]["error"]
                == "ErrorCode_HttpRequestDenied"
            )
    finally:
        up.proc.kill()
        up.proc.communicate()
    # (`start` probes a path too, which this app relays as well.)
    assert {seen.path for seen in server.seen} == {"/by-variable"}
    assert_never_connected(silent)
