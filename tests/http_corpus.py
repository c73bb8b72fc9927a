"""A corpus of HTTP requests, an exact client for them, and a comparer of two servers' answers.

Issue 22: wasikv must answer a `wasi:http/proxy` component's requests as
`wasmtime serve` does. `CORPUS` holds requests for the proxy guest
(tests/guests/wasi_http_proxy): methods, query strings, repeated headers,
empty, small, chunked (with and without trailers) and 5 MiB bodies,
streamed responses, response trailers, a guest that answers before reading
the body, and guest failures. `send` puts one on the wire and reads the
answer; `compare` lists how two answers differ.

One client for every case: the request is written byte for byte by this
module (so both servers receive exactly the same bytes, chunk boundaries and
trailers included, which httpx cannot promise) and sent from a thread while
the answer is read (a server may answer before the body is sent, then stop
reading). The answer is parsed by h11, wasikv's own HTTP/1.1 parser, which
keeps every header line in order, the response trailers, and whether the
message ended properly or the connection was cut.
"""

from __future__ import annotations

import random
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import h11

__all__ = [
    "BIG",
    "CORPUS",
    "FRAMING_HEADERS",
    "HOST",
    "SERVER_HEADERS",
    "SMALL",
    "Answer",
    "Case",
    "by_name",
    "compare",
    "send",
]

#: The Host header of every corpus request: the same for both servers, whatever their ports.
HOST = "corpus.test"
#: A 5 MiB body of pseudo-random bytes (the same on every run).
BIG = random.Random(22).randbytes(5 << 20)
SMALL = b"a small body\n"


@dataclass(frozen=True)
class Case:
    """One request of the corpus.

    `headers` are sent in order after `Host` (repeated names allowed); the
    body is framed by content-length, or by chunked encoding in pieces of
    `chunk_size` bytes (then `trailers` follow it). `server_made` marks the
    cases whose answer the server writes itself because the guest failed:
    only their status is compared (each server words its own error page).
    `wasmtime_quirk` says where `wasmtime serve` answers wrongly, so a
    differential test can expect wasikv to differ there.
    """

    name: str
    method: str
    target: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    chunked: bool = False
    chunk_size: int = 16384
    trailers: tuple[tuple[str, str], ...] = ()
    server_made: bool = False
    #: Where `wasmtime serve` 49 is known to get this case wrong (what it does), else "".
    wasmtime_quirk: str = ""

    def request_bytes(self) -> bytes:
        """The request line and head, exactly as sent (the body follows: `body_bytes`)."""
        lines = [f"{self.method} {self.target} HTTP/1.1", f"host: {HOST}"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        if self.chunked:
            lines.append("transfer-encoding: chunked")
        elif self.body or self.method in {"POST", "PUT", "PATCH"}:
            lines.append(f"content-length: {len(self.body)}")
        # One request per connection: an answer that leaves the body unread
        # must not leave the next request behind it.
        lines.append("connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def body_bytes(self) -> Iterable[bytes]:
        """The body as written to the socket, in the pieces written (chunk framing included)."""
        if not self.chunked:
            if self.body:
                yield self.body
            return
        for start in range(0, len(self.body), self.chunk_size):
            piece = self.body[start : start + self.chunk_size]
            yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        trailers = "".join(f"{name}: {value}\r\n" for name, value in self.trailers)
        yield b"0\r\n" + trailers.encode("latin-1") + b"\r\n"


@dataclass
class Answer:
    """What a server answered to one `Case`.

    `status` is None when the connection closed before a response head;
    `complete` is whether the message ended as its framing says (a
    content-length fully sent, the last chunk), not cut off. Header names are
    lower-cased (HTTP/1.1's are case-insensitive), lines kept in order.
    """

    status: int | None
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    trailers: list[tuple[str, str]] = field(default_factory=list)
    complete: bool = False
    #: Whether the whole request was sent before the server stopped reading it.
    request_sent: bool = True

    def header(self, name: str) -> list[str]:
        """Every value of header `name`, in order."""
        return [value for key, value in self.headers if key == name]


#: Headers a server adds on its own and words as it likes: ignored by `compare`.
#: `date` changes every second; `server` names the server (uvicorn says so,
#: wasmtime says nothing); `connection` and `keep-alive` are hop-by-hop and
#: depend on each server's connection policy, not on the guest.
SERVER_HEADERS = frozenset({"date", "server", "connection", "keep-alive"})
#: How a body is framed on the wire: a server may send a guest's body of
#: unknown length chunked or, having buffered it, with a content-length, and
#: `send` has already removed the chunk framing. Compared only when both
#: answers carry a content-length (then the two must agree); the body itself
#: is always compared.
FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding"})


def compare(a: Answer, b: Answer, *, server_made: bool = False) -> list[str]:
    """How answers `a` and `b` differ, one sentence each; empty when they are the same.

    Compared: the status; whether each message was complete; the headers
    but `SERVER_HEADERS` and `FRAMING_HEADERS` (see those), as each name's
    list of values in order (the order between different names carries no
    meaning in HTTP, the order of one name's values does); a content-length
    present in both; the body, de-chunked; the trailers, likewise. With
    `server_made` (the guest failed and each server wrote its own error
    answer) only the status is compared. Two answers both cut off are the
    same: whether a head or part of the body arrived before the cut depends
    on timing (wasmtime sends either for `short-body`).
    """
    if not a.complete and not b.complete:
        return []  # both cut off: what arrived first depends on timing
    found: list[str] = []
    if a.status != b.status:
        found.append(f"status {a.status} != {b.status}")
    if server_made:
        return found
    if a.complete != b.complete:
        found.append(f"complete {a.complete} != {b.complete}")
    found += _fields_differ("header", a.headers, b.headers, SERVER_HEADERS | FRAMING_HEADERS)
    length_a, length_b = a.header("content-length"), b.header("content-length")
    if length_a and length_b and length_a != length_b:
        found.append(f"content-length {length_a} != {length_b}")
    if a.body != b.body:
        found.append(f"body differs: {_show(a.body)} != {_show(b.body)}")
    found += _fields_differ("trailer", a.trailers, b.trailers, frozenset())
    return found


def _fields_differ(
    kind: str, a: list[tuple[str, str]], b: list[tuple[str, str]], ignored: frozenset[str]
) -> list[str]:
    def grouped(lines: list[tuple[str, str]]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for name, value in lines:
            if name not in ignored:
                found.setdefault(name, []).append(value)
        return found

    left, right = grouped(a), grouped(b)
    return [
        f"{kind} {name}: {left.get(name)} != {right.get(name)}"
        for name in sorted(left.keys() | right.keys())
        if left.get(name) != right.get(name)
    ]


def _show(body: bytes) -> str:
    if len(body) <= 80:
        return repr(body)
    return f"{len(body)} bytes {body[:40]!r}..."


def send(base_url: str, case: Case, timeout: float = 120) -> Answer:
    """Send `case` to the server at `base_url` (http://host:port) on a new connection; its answer."""
    url = urlsplit(base_url)
    assert url.hostname is not None and url.port is not None, base_url
    with socket.create_connection((url.hostname, url.port), timeout=timeout) as sock:
        sender = _Sender(sock, case)
        sender.start()
        try:
            return _receive(sock, case, sender)
        finally:
            sender.join(timeout)


class _Sender(threading.Thread):
    """Writes the request; a server that answers early may stop reading (or close) meanwhile."""

    def __init__(self, sock: socket.socket, case: Case) -> None:
        super().__init__(daemon=True)
        self.sock, self.case = sock, case
        self.complete = False

    def run(self) -> None:
        try:
            self.sock.sendall(self.case.request_bytes())
            for piece in self.case.body_bytes():
                self.sock.sendall(piece)
            self.complete = True
        except OSError:
            pass  # the server closed or reset the connection: the answer says what it did


def _receive(sock: socket.socket, case: Case, sender: _Sender) -> Answer:
    parser = h11.Connection(h11.CLIENT)
    # Told the request (not sent through it) so it knows what answers may
    # carry a body (none to HEAD) and where the answer ends.
    parser.send(h11.Request(method=case.method, target=case.target, headers=[("host", HOST)]))
    answer = Answer(status=None)
    body = bytearray()
    while True:
        try:
            event = parser.next_event()
        except h11.RemoteProtocolError:
            break  # the connection was cut in the middle of the answer
        if event is h11.NEED_DATA:
            try:
                data = sock.recv(1 << 16)
            except ConnectionResetError:
                data = b""
            parser.receive_data(data)
            continue
        if isinstance(event, h11.Response):
            answer.status = event.status_code
            answer.headers = [
                (name.decode("latin-1"), value.decode("latin-1")) for name, value in event.headers
            ]
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            answer.trailers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in event.headers]
            answer.complete = True
            break
        elif isinstance(event, h11.ConnectionClosed):
            break
        # InformationalResponse (100 Continue): nothing to keep.
    sender.join(30)
    answer.body = bytes(body)
    answer.request_sent = sender.complete
    return answer


_REPEATED = (("x-repeat", "one"), ("x-repeat", "two"), ("X-Mixed-Case", "Value"), ("x-repeat", "three"))

#: The requests, for the proxy guest's routes (tests/guests/wasi_http_proxy/app.py).
CORPUS: tuple[Case, ...] = (
    Case("info-get", "GET", "/echo/info?x=1&y=two%20words&x=3", headers=_REPEATED),
    Case("info-get-no-query", "GET", "/echo/info"),
    Case("info-post-small", "POST", "/echo/info", headers=(("content-type", "text/plain"),), body=SMALL),
    Case("info-post-empty", "POST", "/echo/info"),
    Case("info-post-chunked", "POST", "/echo/info", body=BIG[:100_000], chunked=True, chunk_size=7_000),
    Case("info-put-big", "PUT", "/echo/info", body=BIG),
    Case("info-delete", "DELETE", "/echo/info?id=7"),
    Case("info-patch", "PATCH", "/echo/info", body=b'{"op": "replace"}'),
    Case("info-options", "OPTIONS", "/echo/info"),
    Case("info-custom-method", "PURGE", "/echo/info"),
    Case("info-head", "HEAD", "/echo/info"),
    Case(
        "info-hop-by-hop",
        "GET",
        "/echo/info",
        headers=(
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic c2VjcmV0"),
            ("te", "trailers"),
            ("x-forwarded-for", "192.0.2.1"),
        ),
    ),
    Case("info-latin1-value", "GET", "/echo/info", headers=(("x-latin", "caf\xe9"),)),
    Case("info-expect-continue", "POST", "/echo/info", headers=(("expect", "100-continue"),), body=SMALL),
    Case("bad-header-name", "GET", "/echo/info", headers=(("bad header", "x"),), server_made=True),
    Case("info-encoded-path", "GET", "/echo/info/../info?q=%2F%3F%26&empty=&flag"),
    Case("echo-small", "POST", "/echo/body", body=SMALL),
    Case("echo-empty", "POST", "/echo/body"),
    Case("echo-chunked", "POST", "/echo/body", body=BIG[:300_000], chunked=True, chunk_size=1_000),
    Case("echo-big", "POST", "/echo/body", body=BIG),
    Case("echo-big-chunked", "POST", "/echo/body", body=BIG, chunked=True, chunk_size=65_536),
    Case("echo-blocking-big", "POST", "/echo/body-blocking", body=BIG),
    Case("echo-blocking-chunked", "POST", "/echo/body-blocking", body=BIG[:200_000], chunked=True),
    Case("echo-splice", "POST", "/echo/body-splice", body=BIG[:200_000], chunked=True),
    Case(
        "request-trailers",
        "POST",
        "/echo/trailers",
        headers=(("te", "trailers"),),
        body=SMALL * 10,
        chunked=True,
        chunk_size=20,
        trailers=(("x-checksum", "abc"), ("x-note", "one"), ("x-note", "two")),
        wasmtime_quirk="the guest is given only the last value of a repeated request trailer",
    ),
    Case("request-no-trailers", "POST", "/echo/trailers", body=SMALL),
    Case("stream-many-chunks", "GET", "/stream?chunks=500&size=100"),
    Case("stream-big", "GET", "/stream?chunks=80&size=65536"),
    Case(
        "response-trailers",
        "GET",
        "/trailers?declare=1",
        headers=(("te", "trailers"),),
        wasmtime_quirk="only the last value of a repeated response trailer is sent",
    ),
    Case("response-trailers-undeclared", "GET", "/trailers", headers=(("te", "trailers"),)),
    Case("response-trailers-unasked", "GET", "/trailers?declare=1"),
    Case("early-answer-small", "POST", "/early", body=SMALL),
    Case("early-answer-big", "POST", "/early", body=BIG),
    Case("early-answer-chunked", "POST", "/early", body=BIG, chunked=True),
    Case("status-418", "GET", "/status?code=418"),
    Case("status-201", "POST", "/status?code=201", body=SMALL),
    Case("status-500-by-guest", "GET", "/status?code=500"),
    Case("status-304", "GET", "/status?code=304"),
    Case("status-from-204", "GET", "/status?code=204"),
    Case("empty", "GET", "/empty"),
    Case("no-content", "GET", "/no-content"),
    Case("declared-length", "GET", "/length"),
    Case("declared-length-head", "HEAD", "/length"),
    Case("short-body", "GET", "/length/short"),
    Case("response-headers", "GET", "/headers"),
    Case("not-found", "GET", "/nowhere?x=1"),
    Case("guest-raises", "GET", "/error/raise", server_made=True),
    Case(
        "guest-raises-after-headers",
        "GET",
        "/error/after-headers",
        wasmtime_quirk="the body written before the trap is ended as if complete (a final chunk)",
    ),
    Case("guest-error-code", "GET", "/error/outparam", server_made=True),
)


def by_name(name: str) -> Case:
    """The corpus case called `name`."""
    for case in CORPUS:
        if case.name == name:
            return case
    raise KeyError(name)
