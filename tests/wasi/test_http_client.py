"""The outbound HTTP client against real local servers: policy before any connection, streaming
in bounded memory, timeouts, failures as wasi:http error codes, no redirects, no proxies."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import tracemalloc
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from wasikv.allowed_hosts import AllowedHosts
from wasikv.interfaces.wasi.http_client import (
    BodyPipe,
    ClientError,
    Exchange,
    HttpClient,
    Limits,
    OutboundRequest,
    ResponseHead,
    Timeouts,
)

from .local_server import Handler, LocalServer, ServerExchange

#: How long a test waits for something that should happen at once: a bound against hangs, never a speed claim.
WAIT = 60.0
MiB = 1024 * 1024


@pytest.fixture
def client() -> Iterator[HttpClient]:
    http = HttpClient()
    yield http
    http.close()


@pytest.fixture
def servers() -> Iterator[list[LocalServer]]:
    """Servers a test starts (`servers.append(LocalServer(...))`), closed after it."""
    started: list[LocalServer] = []
    yield started
    for server in started:
        server.close()


def serve(
    servers: list[LocalServer], handler: Handler | None = None, tls: ssl.SSLContext | None = None
) -> LocalServer:
    server = LocalServer(handler, tls=tls)
    servers.append(server)
    return server


def allow(*servers: LocalServer, scheme: str = "http") -> AllowedHosts:
    return AllowedHosts.parse([f"{scheme}://{server.authority}" for server in servers])


def get(
    server: LocalServer, path: str = "/", headers: list[tuple[str, bytes]] | None = None
) -> OutboundRequest:
    return OutboundRequest("GET", "http", server.authority, path, headers or [])


def head_of(exchange: Exchange) -> ResponseHead:
    result = exchange.wait(WAIT)
    assert isinstance(result, ResponseHead), result
    return result


def error_of(exchange: Exchange) -> ClientError:
    result = exchange.wait(WAIT)
    assert isinstance(result, ClientError), result
    return result


def read_all(pipe: BodyPipe) -> bytes:
    parts: list[bytes] = []
    while True:
        assert pipe.wait_readable(WAIT), "the body stalled"
        data = pipe.read(64 * 1024)
        if data is None:
            return b"".join(parts)
        parts.append(data)


def write_all(
    pipe: BodyPipe, chunks: Iterable[bytes], trailers: list[tuple[str, bytes]] | None = None
) -> bool:
    """Write as a guest does (never more than `space()`); False when the client stopped reading."""
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            assert pipe.wait_writable(WAIT), "the request body stalled"
            room = pipe.space()
            if not pipe.write(view[:room]):
                return False
            view = view[room:]
    pipe.finish(trailers)
    return True


def blocks(total: int, size: int = 256 * 1024) -> Iterator[bytes]:
    """`total` bytes of varied content, `size` at a time."""
    for start in range(0, total, size):
        seed = hashlib.sha256(start.to_bytes(8, "big")).digest()
        yield (seed * (size // len(seed) + 1))[: min(size, total - start)]


# ------------------------------------------------------------- basics


def test_a_response_comes_back_with_status_headers_and_body(
    client: HttpClient, servers: list[LocalServer]
) -> None:
    def handler(exchange: ServerExchange) -> None:
        exchange.reply(201, b"hello " + exchange.request.target, [("x-multi", "a"), ("X-Multi", "b")])

    server = serve(servers, handler)
    exchange = client.send(get(server, "/path?q=1", headers=[("accept", b"text/plain")]), allow(server))
    head = head_of(exchange)
    assert head.status == 201
    assert [value for name, value in head.headers if name == "x-multi"] == [b"a", b"b"]
    assert read_all(exchange.body) == b"hello /path?q=1"
    assert exchange.body.error is None
    seen = server.exchanges[0]
    assert seen.request.method == b"GET"
    assert seen.headers["host"] == server.authority
    assert seen.headers["accept"] == "text/plain"
    assert "content-length" not in seen.headers and "transfer-encoding" not in seen.headers


def test_the_host_header_and_connection_headers_are_the_clients(
    client: HttpClient, servers: list[LocalServer]
) -> None:
    server = serve(servers)
    headers = [("Host", b"evil.example"), ("Connection", b"upgrade"), ("Upgrade", b"h2c"), ("x-kept", b"1")]
    head_of(client.send(get(server, headers=headers), allow(server)))
    seen = server.exchanges[0].headers
    assert seen["host"] == server.authority
    assert "upgrade" not in seen and "connection" not in seen
    assert seen["x-kept"] == "1"


def test_a_known_body_is_sent_with_its_length_and_a_streamed_one_chunked(
    client: HttpClient, servers: list[LocalServer]
) -> None:
    server = serve(servers)
    written = BodyPipe()
    write_all(written, [b"all of it"])
    exchange = client.send(OutboundRequest("PUT", "http", server.authority, "/", body=written), allow(server))
    assert read_all(exchange.body) == b"all of it"
    assert server.exchanges[-1].headers["content-length"] == "9"

    streamed = BodyPipe()
    exchange = client.send(
        OutboundRequest("POST", "http", server.authority, "/", body=streamed), allow(server)
    )
    write_all(streamed, [b"streamed ", b"later"], trailers=[("x-checksum", b"42")])
    assert read_all(exchange.body) == b"streamed later"
    seen = server.exchanges[-1]
    assert seen.headers["transfer-encoding"] == "chunked"
    assert seen.trailers == [(b"x-checksum", b"42")]

    exchange = client.send(OutboundRequest("POST", "http", server.authority, "/"), allow(server))
    assert read_all(exchange.body) == b""
    assert server.exchanges[-1].headers["content-length"] == "0"


def test_a_body_that_does_not_match_its_content_length_fails(
    client: HttpClient, servers: list[LocalServer]
) -> None:
    server = serve(servers)
    for written, declared in ((b"12345", b"3"), (b"1", b"3")):
        body = BodyPipe()
        request = OutboundRequest("POST", "http", server.authority, "/", [("content-length", declared)], body)
        exchange = client.send(request, allow(server))
        write_all(body, [written])
        assert error_of(exchange) == ClientError("HTTP-request-body-size", len(written))


def test_response_trailers_reach_the_guest(client: HttpClient, servers: list[LocalServer]) -> None:
    def handler(exchange: ServerExchange) -> None:
        exchange.respond(200, [("transfer-encoding", "chunked"), ("trailer", "x-digest")])
        exchange.send(b"body")
        exchange.end([("x-digest", "abc")])

    server = serve(servers, handler)
    exchange = client.send(get(server), allow(server))
    assert read_all(exchange.body) == b"body"
    assert exchange.body.trailers == (("x-digest", b"abc"),)


def test_redirects_are_answers_for_the_guest(client: HttpClient, servers: list[LocalServer]) -> None:
    elsewhere = serve(servers)
    server = serve(servers, lambda e: e.reply(302, b"", [("location", f"http://{elsewhere.authority}/")]))
    head = head_of(client.send(get(server), allow(server, elsewhere)))
    assert head.status == 302
    assert dict(head.headers)["location"] == f"http://{elsewhere.authority}/".encode()
    assert elsewhere.connections == 0


def test_proxy_variables_of_the_host_are_ignored(
    client: HttpClient, servers: list[LocalServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = serve(servers, lambda e: e.reply(200, b"from the proxy"))
    server = serve(servers, lambda e: e.reply(200, b"direct"))
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, f"http://{proxy.authority}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert read_all(client.send(get(server), allow(server)).body) == b"direct"
    assert proxy.connections == 0


def test_a_host_spelled_as_another_ip_form_reaches_the_checked_address(
    client: HttpClient, servers: list[LocalServer]
) -> None:
    server = serve(servers)
    authority = f"0x7f.0.0.1:{server.port}"
    head_of(client.send(OutboundRequest("GET", "http", authority, "/"), allow(server)))
    assert server.exchanges[0].headers["host"] == authority


# ------------------------------------------------------------- policy


def test_a_denied_request_opens_no_connection(client: HttpClient, servers: list[LocalServer]) -> None:
    server = serve(servers)
    other_port = AllowedHosts.parse([f"http://127.0.0.1:{server.port + 1}"])
    body = BodyPipe()
    denied = [
        (get(server), AllowedHosts()),
        (get(server), other_port),
        (OutboundRequest("GET", "https", server.authority, "/"), allow(server)),
        (OutboundRequest("GET", "http", f"localhost:{server.port}", "/"), allow(server)),
        (
            OutboundRequest("POST", "http", server.authority, "/", body=body),
            AllowedHosts.parse(["https://*:*"]),
        ),
        (
            OutboundRequest("GET", "http", f"authz.spin.internal:{server.port}", "/"),
            AllowedHosts.parse(["*://*:*"]),
        ),
    ]
    for request, allowed in denied:
        exchange = client.send(request, allowed)
        assert exchange.done, "a denied request is answered before send returns"
        assert error_of(exchange) == ClientError("HTTP-request-denied")
        assert exchange.body.read(10) is None
    assert not body.write(b"x"), "the guest's body writes fail once the request is refused"
    assert server.connections == 0


def test_invalid_requests_fail_before_any_connection(client: HttpClient, servers: list[LocalServer]) -> None:
    server = serve(servers)
    everything = AllowedHosts.parse(["*://*:*"])
    cases = [
        (OutboundRequest("GE T", "http", server.authority), "HTTP-request-method-invalid"),
        (OutboundRequest("CONNECT", "http", server.authority), "HTTP-request-method-invalid"),
        (OutboundRequest("GET", "http", server.authority, "no-slash"), "HTTP-request-URI-invalid"),
        (OutboundRequest("GET", "http", server.authority, "/a b"), "HTTP-request-URI-invalid"),
        (OutboundRequest("GET", "http", server.authority, "/\r\nx: y"), "HTTP-request-URI-invalid"),
        (OutboundRequest("GET", "http", "127.0.0.1:99999"), "HTTP-request-URI-invalid"),
        (OutboundRequest("GET", "http", "exa mple.com"), "HTTP-request-URI-invalid"),
        (OutboundRequest("GET", "ftp", server.authority), "HTTP-protocol-error"),
        (
            OutboundRequest("GET", "http", server.authority, headers=[("x-bad", b"a\r\nb")]),
            "HTTP-protocol-error",
        ),
    ]
    for request, case in cases:
        assert error_of(client.send(request, everything)).case == case, request
    assert server.connections == 0


def test_self_requests_go_to_the_origin_when_self_is_allowed(
    client: HttpClient, servers: list[LocalServer]
) -> None:
    server = serve(servers, lambda e: e.reply(200, b"self: " + e.request.target))
    origin = ("http", server.authority)
    relative = OutboundRequest("GET", None, None, "/api")
    self_alt = OutboundRequest("GET", "http", "self.alt", "/alt")
    to_self = AllowedHosts.parse(["http://self"])
    answer = client.send(relative, to_self, self_origin=origin)
    assert read_all(answer.body) == b"self: /api"
    answer = client.send(self_alt, AllowedHosts.parse(["https://self.alt"]), self_origin=origin)
    assert read_all(answer.body) == b"self: /alt"
    denied = client.send(relative, AllowedHosts.parse(["http://example.com"]), self_origin=origin)
    assert error_of(denied) == ClientError("HTTP-request-denied")
    assert error_of(client.send(relative, to_self)) == ClientError("HTTP-request-URI-invalid")
    assert server.connections == 2


# ---------------------------------------------------- streaming, memory


def test_large_bodies_stream_both_ways_in_bounded_memory(
    client: HttpClient, servers: list[LocalServer]
) -> None:
    def echo(exchange: ServerExchange) -> None:
        # Answers while it reads: a client that sent everything before reading would deadlock here.
        exchange.respond(200, [("transfer-encoding", "chunked")])
        for chunk in exchange.body():
            exchange.send(chunk)
        exchange.end()

    server = serve(servers, echo)
    total = 24 * MiB
    sent_digest = hashlib.sha256()
    body = BodyPipe(64 * 1024)

    def guest_writes() -> None:
        def digested() -> Iterator[bytes]:
            for block in blocks(total):
                sent_digest.update(block)
                yield block

        write_all(body, digested())

    tracemalloc.start()
    try:
        exchange = client.send(
            OutboundRequest("POST", "http", server.authority, "/", body=body), allow(server)
        )
        writer = threading.Thread(target=guest_writes)
        writer.start()
        received, received_digest = 0, hashlib.sha256()
        head_of(exchange)
        tracemalloc.reset_peak()
        while True:
            assert exchange.body.wait_readable(WAIT)
            data = exchange.body.read(16 * 1024)
            if data is None:
                break
            received += len(data)
            received_digest.update(data)
        writer.join(WAIT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert exchange.body.error is None
    assert received == total
    assert received_digest.digest() == sent_digest.digest()
    assert body.peak <= 64 * 1024 and exchange.body.peak <= client.limits.buffer
    # Both bodies passed through this process (and the echo server's thread): 48 MiB in all.
    assert peak < 4 * MiB, f"{peak} bytes held at the peak"


def test_a_guest_that_does_not_read_holds_the_server_back(
    client: HttpClient, servers: list[LocalServer]
) -> None:
    total = 256 * MiB

    def endless(exchange: ServerExchange) -> None:
        exchange.respond(200, [("content-length", str(total))])
        for block in blocks(total, 1 * MiB):
            exchange.send(block)
        exchange.end()

    server = serve(servers, endless)
    exchange = client.send(get(server), allow(server))
    head_of(exchange)
    while exchange.body.space() > 0:  # the pipe fills up: the guest reads nothing
        time.sleep(0.01)
    # Let the server send all it can; it stops when the socket buffers are full.
    seen, stable_since = -1, time.monotonic()
    while time.monotonic() - stable_since < 0.5:
        sent = server.exchanges[0].sent
        if sent != seen:
            seen, stable_since = sent, time.monotonic()
        time.sleep(0.05)
    assert seen < 64 * MiB, f"the server sent {seen} bytes to a guest that read none"
    exchange.body.close_reader()  # the guest drops the body: the connection goes
    deadline = time.monotonic() + WAIT
    while server.exchanges[0].sent < total and not server.errors and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.errors, "the server kept sending to a dropped body"


def test_a_dropped_exchange_closes_its_connection(client: HttpClient, servers: list[LocalServer]) -> None:
    server = serve(servers, lambda e: e.closing.wait())
    exchange = client.send(get(server), allow(server))
    while not server.exchanges:
        time.sleep(0.01)
    exchange.cancel()
    assert error_of(exchange).case == "internal-error"
    sock = server.exchanges[0].sock
    sock.settimeout(WAIT)
    assert sock.recv(1) == b"", "the client closed the connection"


# ------------------------------------------------------------- failures


def test_a_server_that_never_answers_times_out(client: HttpClient, servers: list[LocalServer]) -> None:
    server = serve(servers, lambda e: e.closing.wait())
    exchange = client.send(get(server), allow(server), timeouts=Timeouts(first_byte=0.3))
    assert error_of(exchange) == ClientError("connection-read-timeout")


def test_a_body_that_stalls_times_out(client: HttpClient, servers: list[LocalServer]) -> None:
    def stalls(exchange: ServerExchange) -> None:
        exchange.respond(200, [("content-length", "100")])
        exchange.send(b"partial")
        exchange.closing.wait()

    server = serve(servers, stalls)
    exchange = client.send(get(server), allow(server), timeouts=Timeouts(between_bytes=0.3))
    assert head_of(exchange).status == 200
    assert read_all(exchange.body) == b"partial"
    assert exchange.body.error == ClientError("connection-read-timeout")


def test_a_tls_handshake_that_never_completes_is_a_connect_timeout(
    client: HttpClient, servers: list[LocalServer]
) -> None:
    silent = socket.create_server(("127.0.0.1", 0))
    try:
        port = silent.getsockname()[1]
        request = OutboundRequest("GET", "https", f"127.0.0.1:{port}", "/")
        exchange = client.send(
            request, AllowedHosts.parse([f"https://127.0.0.1:{port}"]), timeouts=Timeouts(connect=0.3)
        )
        assert error_of(exchange) == ClientError("connection-timeout")
    finally:
        silent.close()


def test_a_closed_port_is_connection_refused(client: HttpClient) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    exchange = client.send(
        OutboundRequest("GET", "http", f"127.0.0.1:{port}", "/"), AllowedHosts.parse(["*://*:*"])
    )
    assert error_of(exchange) == ClientError("connection-refused")


def test_an_unknown_name_is_a_dns_error(client: HttpClient) -> None:
    request = OutboundRequest("GET", "http", "no-such-host.invalid", "/")
    error = error_of(client.send(request, AllowedHosts.parse(["*://*:*"])))
    assert error == ClientError("DNS-error", {"rcode": "address not available", "info-code": None})


def test_a_truncated_response_is_incomplete(client: HttpClient, servers: list[LocalServer]) -> None:
    def truncates(exchange: ServerExchange) -> None:
        exchange.respond(200, [("content-length", "100")])
        exchange.send(b"only this")

    server = serve(servers, truncates)
    exchange = client.send(get(server), allow(server))
    assert read_all(exchange.body) == b"only this"
    assert exchange.body.error == ClientError("HTTP-response-incomplete")

    server = serve(servers, lambda e: None)  # closes without an answer
    assert error_of(client.send(get(server), allow(server))) == ClientError("HTTP-response-incomplete")


def test_oversized_responses_are_refused(servers: list[LocalServer]) -> None:
    client = HttpClient(limits=Limits(head_bytes=4096, headers=10, response_body=1000))
    try:
        server = serve(servers, lambda e: e.reply(200, b"", [("x-big", "a" * 8000)]))
        assert error_of(client.send(get(server), allow(server))).case == "HTTP-response-header-section-size"
        server = serve(servers, lambda e: e.reply(200, b"", [(f"x-{i}", "a") for i in range(11)]))
        assert error_of(client.send(get(server), allow(server))).case == "HTTP-response-header-section-size"
        server = serve(servers, lambda e: e.reply(200, b"x" * 5000))
        exchange = client.send(get(server), allow(server))
        read_all(exchange.body)
        assert exchange.body.error is not None and exchange.body.error.case == "HTTP-response-body-size"
    finally:
        client.close()


def test_garbage_from_the_server_is_a_protocol_error(client: HttpClient, servers: list[LocalServer]) -> None:
    server = serve(servers, lambda e: e.sock.sendall(b"NOT HTTP AT ALL\r\n\r\n"))
    assert error_of(client.send(get(server), allow(server))) == ClientError("HTTP-protocol-error")


# ------------------------------------------------------------------ TLS


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        if os.environ.get("CI") == "true":
            pytest.fail("the openssl command is needed to make a test certificate")
        pytest.skip("the openssl command is not installed (needed to make a test certificate)")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert),
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def test_https_verifies_the_certificate(
    client: HttpClient, servers: list[LocalServer], certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    server = serve(servers, lambda e: e.reply(200, b"secret"), tls=tls)
    request = OutboundRequest("GET", "https", server.authority, "/")
    assert error_of(client.send(request, allow(server, scheme="https"))) == ClientError(
        "TLS-certificate-error"
    )
    trusting = HttpClient(ssl_context=ssl.create_default_context(cafile=str(cert)))
    try:
        assert read_all(trusting.send(request, allow(server, scheme="https")).body) == b"secret"
    finally:
        trusting.close()
