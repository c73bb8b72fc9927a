"""`wasikv up`'s HTTP front door against raw-socket attackers: request smuggling and slowloris.

A real `wasikv up` serves the hostile suite guest, whose `/hostile/count`
increments a counter in its store: a smuggled request that ran shows up there.
"""

from __future__ import annotations

import json
import re
import selectors
import shutil
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from wasikv.server.serve import ServerLimits, _client_key

from .test_up_hostile import MANIFEST, Up, start_up

#: A second request hidden where a front end reading Content-Length sees body.
HIDDEN = b"GET /hostile/count HTTP/1.1\r\nHost: x\r\n\r\n"


def _address(up: Up) -> tuple[str, int]:
    host, port = up.base.removeprefix("http://").split(":")
    return host, int(port)


def _connect(up: Up, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.bind((source, 0))
    sock.connect(_address(up))
    return sock


def _read_until_closed(sock: socket.socket, seconds: float = 10) -> tuple[bytes, bool]:
    """Everything the server sends within `seconds`, and whether it then closed the connection."""
    deadline = time.monotonic() + seconds
    data = b""
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return data, False
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def _statuses(data: bytes) -> list[int]:
    """The status codes of the HTTP/1.1 responses in `data`."""
    # A response's status line follows the last one's body directly: no line break to split at.
    return [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]


@pytest.fixture(scope="module")
def front_app(hostile_wasm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    app_dir = tmp_path_factory.mktemp("front")
    shutil.copy(hostile_wasm, app_dir / "hostile.wasm")
    (app_dir / "wasikv.toml").write_text(MANIFEST)
    return app_dir


@pytest.fixture(scope="module")
def smuggling_up(front_app: Path) -> Iterator[Up]:
    server = start_up(front_app, "--workers", "2", "--header-timeout", "5", "--keep-alive-timeout", "5")
    yield server
    if server.proc.poll() is None:
        server.proc.kill()
        server.proc.communicate()


def _hits(up: Up) -> int:
    """Run `/hostile/count` once (on its own connection): the counter after it."""
    with _connect(up) as sock:
        sock.sendall(b"GET /hostile/count HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data, closed = _read_until_closed(sock)
    assert closed and _statuses(data) == [200], data
    return int(json.loads(data.partition(b"\r\n\r\n")[2])["hits"])


def _chunked(body: bytes) -> bytes:
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"


# Each hides HIDDEN after a chunked body; the head lines carry the ambiguity.
# The expected status: 400, or 501 for a transfer coding wasikv does not implement.
_CHUNKED_THEN_HIDDEN = _chunked(b"") + HIDDEN
SMUGGLING = {
    # RFC 9112 6.3: both headers are a smuggling attempt; h11 used chunked and kept going.
    "content-length-and-chunked": (
        b"POST /hostile/ok HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" % len(_CHUNKED_THEN_HIDDEN),
        400,
    ),
    "chunked-then-content-length": (
        b"POST /hostile/ok HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Length: %d\r\n\r\n" % len(_CHUNKED_THEN_HIDDEN),
        400,
    ),
    "content-length-and-Chunked": (
        b"POST /hostile/ok HTTP/1.1\r\nHost: x\r\ncontent-length: 4\r\ntransfer-encoding: Chunked\r\n\r\n",
        400,
    ),
    # A front end that does not unfold sees an empty Transfer-Encoding (no body).
    "obs-fold-transfer-encoding": (
        b"POST /hostile/ok HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n",
        400,
    ),
    "obs-fold-elsewhere": (
        b"POST /hostile/ok HTTP/1.1\r\nHost: x\r\nX-Note: one\r\n\ttwo\r\nTransfer-Encoding: chunked\r\n\r\n",
        400,
    ),
    # RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 means faulty framing.
    "http-1.0-chunked": (
        b"POST /hostile/ok HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n",
        400,
    ),
    # Already refused by h11 (kept here so they stay refused).
    "differing-content-lengths": (
        b"POST /hostile/ok HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: %d\r\n\r\n"
        % len(_CHUNKED_THEN_HIDDEN),
        400,
    ),
    "two-transfer-encodings": (
        b"POST /hostile/ok HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n",
        501,
    ),
    "gzip-chunked": (
        b"POST /hostile/ok HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        501,
    ),
    "space-before-colon": (
        b"POST /hostile/ok HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n",
        400,
    ),
}


@pytest.mark.parametrize("head", list(SMUGGLING))
def test_ambiguous_framing_is_refused_and_the_connection_closed(smuggling_up: Up, head: str) -> None:
    request, status = SMUGGLING[head]
    before = _hits(smuggling_up)
    with _connect(smuggling_up) as sock:
        sock.sendall(request + _CHUNKED_THEN_HIDDEN)
        data, closed = _read_until_closed(sock)
    assert _statuses(data) == [status], data
    assert closed, "the connection stayed open after a request with ambiguous framing"
    assert b"connection: close" in data.lower()
    # The hidden request never ran: only this test's own count did.
    assert _hits(smuggling_up) == before + 1


def test_the_refusal_names_the_problem(smuggling_up: Up) -> None:
    with _connect(smuggling_up) as sock:
        sock.sendall(SMUGGLING["content-length-and-chunked"][0] + _CHUNKED_THEN_HIDDEN)
        data, _ = _read_until_closed(sock)
    assert b"both Content-Length and Transfer-Encoding" in data.partition(b"\r\n\r\n")[2], data
    with _connect(smuggling_up) as sock:
        sock.sendall(SMUGGLING["obs-fold-transfer-encoding"][0] + _CHUNKED_THEN_HIDDEN)
        data, _ = _read_until_closed(sock)
    assert b"obsolete line folding" in data.partition(b"\r\n\r\n")[2], data


def test_ambiguous_framing_after_an_honest_request_on_the_same_connection(smuggling_up: Up) -> None:
    before = _hits(smuggling_up)
    with _connect(smuggling_up) as sock:
        sock.sendall(
            b"GET /hostile/count HTTP/1.1\r\nHost: x\r\n\r\n"
            + SMUGGLING["content-length-and-chunked"][0]
            + _CHUNKED_THEN_HIDDEN
        )
        data, closed = _read_until_closed(sock)
    assert _statuses(data) == [200, 400] and closed, data
    assert _hits(smuggling_up) == before + 2


def test_honest_framing_and_pipelining_still_work(smuggling_up: Up) -> None:
    before = _hits(smuggling_up)
    with _connect(smuggling_up) as sock:
        # Chunked, then Content-Length, then a bodiless GET, pipelined on one
        # connection; the last asks to close.
        sock.sendall(
            b"POST /hostile/count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + _chunked(b"some body")
            + b"POST /hostile/count HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody"
            + b"POST /hostile/count HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nbody"
            + b"GET /hostile/count HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        data, closed = _read_until_closed(sock)
    assert _statuses(data) == [200, 200, 200, 200] and closed, data
    assert _hits(smuggling_up) == before + 5


# --- slowloris -----------------------------------------------------------------------------------

SLOW_CONNECTIONS = 300


class Slowloris:
    """Holds up to `count` connections from 127.0.0.1 that send a request line and never finish
    the headers, reopening each one the server closes, until stopped (or `opens_cap` opens)."""

    def __init__(self, address: tuple[str, int], count: int, opens_cap: int = 20_000) -> None:
        self.address = address
        self.count = count
        self.opens_cap = opens_cap
        self.opens = 0
        self.most_held = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Slowloris:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _open(self, selector: selectors.BaseSelector) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        try:
            sock.connect(self.address)
        except BlockingIOError:
            pass
        except OSError:
            sock.close()
            return
        self.opens += 1
        selector.register(sock, selectors.EVENT_WRITE, "connecting")

    def _run(self) -> None:
        with selectors.DefaultSelector() as selector:
            while not self._stop.is_set():
                while len(selector.get_map()) < self.count and self.opens < self.opens_cap:
                    self._open(selector)
                for key, _ in selector.select(timeout=0.1):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    try:
                        if key.data == "connecting":
                            sock.send(b"GET /hostile/ok HTTP/1.1\r\nHost: x\r\n")
                            selector.modify(sock, selectors.EVENT_READ, "held")
                            continue
                        if sock.recv(4096):
                            continue  # an answer (not expected): keep holding
                    except OSError:
                        pass
                    selector.unregister(sock)  # the server closed it: reopen it next round
                    sock.close()
                self.most_held = max(self.most_held, len(selector.get_map()))
                time.sleep(0.05)  # a pause per round, so the test does not starve the server
            for key in list(selector.get_map().values()):
                selector.unregister(key.fileobj)
                key.fileobj.close()  # type: ignore[union-attr]


def _get(up: Up, source: str) -> int | None:
    """One request on a new connection from `source`: its status, or None if none came."""
    try:
        with _connect(up, source) as sock:
            sock.sendall(b"GET /hostile/ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data, _ = _read_until_closed(sock)
    except OSError:
        return None
    statuses = _statuses(data)
    return statuses[0] if statuses else None


@pytest.fixture
def slowloris_up(front_app: Path) -> Iterator[Up]:
    server = start_up(
        front_app, "--workers", "2", "--header-timeout", "2", "--max-connections", "64"
    )  # a client's default share: 64 / 4 = 16 connections
    yield server
    if server.proc.poll() is None:
        server.proc.kill()
        server.proc.communicate()


def test_one_client_holding_hundreds_of_slow_connections_does_not_shut_out_others(
    slowloris_up: Up,
) -> None:
    statuses: list[int | None] = []
    with Slowloris(_address(slowloris_up), SLOW_CONNECTIONS) as attack:
        deadline = time.monotonic() + 30
        while attack.opens < SLOW_CONNECTIONS and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # the attack is in full swing
        started = time.monotonic()
        while len(statuses) < 40 and time.monotonic() - started < 20:
            statuses.append(_get(slowloris_up, "127.0.0.2"))
            time.sleep(0.05)
        opens = attack.opens
    assert opens > SLOW_CONNECTIONS, "the attack never had connections closed under it"
    ok = statuses.count(200)
    assert len(statuses) >= 10 and ok >= 0.9 * len(statuses), statuses
    _, err = slowloris_up.stop(signal.SIGINT)
    # Refusals are logged, but not once per connection.
    refusals = err.count("over the per-client limit")
    assert 1 <= refusals <= 10, err[-3000:]


def test_the_per_client_limit_is_a_flag(front_app: Path) -> None:
    up = start_up(front_app, "--workers", "2", "--max-connections-per-client", "2")
    try:
        held = [_connect(up), _connect(up)]
        for sock in held:
            sock.sendall(b"GET /hostile/ok HTTP/1.1\r\nHost: x\r\n")  # headers unfinished
        time.sleep(0.3)
        for _ in range(5):  # a third connection from the same address: closed at once, unanswered
            with _connect(up) as extra:
                extra.sendall(b"GET /hostile/ok HTTP/1.1\r\nHost: x\r\n\r\n")
                data, closed = _read_until_closed(extra, 5)
                assert closed and data == b""
        assert _get(up, "127.0.0.2") == 200  # another client is served
        held.pop().close()
        time.sleep(0.3)
        assert _get(up, "127.0.0.1") == 200  # a slot is free again
        for sock in held:
            sock.close()
    finally:
        _, err = up.stop(signal.SIGINT)
    assert err.count("over the per-client limit (2 connections)") == 1, err


@pytest.mark.parametrize(
    ("max_connections", "per_client", "expected"),
    [(512, None, 128), (64, None, 16), (20, None, 8), (4, None, None), (512, 600, None), (512, 2, 2)],
)
def test_a_clients_default_share(max_connections: int, per_client: int | None, expected: int | None) -> None:
    limits = ServerLimits(max_connections=max_connections, max_connections_per_client=per_client)
    assert limits.connections_per_client == expected


def test_a_client_is_an_ipv4_address_or_an_ipv6_64() -> None:
    assert _client_key(("203.0.113.7", 1)) == "203.0.113.7"
    assert _client_key(("::ffff:203.0.113.7", 1)) == "203.0.113.7"
    # One host picks addresses from its /64 at will: they are one client.
    assert (
        _client_key(("2001:db8:1:2::1", 1)) == _client_key(("2001:db8:1:2:aaaa::9", 1)) == "2001:db8:1:2::/64"
    )
    assert _client_key(("2001:db8:1:3::1", 1)) != _client_key(("2001:db8:1:2::1", 1))
    assert _client_key(None) is None


def test_refusals_are_logged_with_their_reason_but_not_once_each(front_app: Path) -> None:
    up = start_up(front_app, "--workers", "2", "--max-connections", "2", "--max-connections-per-client", "2")
    try:
        for _ in range(5):
            with _connect(up) as sock:
                sock.sendall(SMUGGLING["content-length-and-chunked"][0] + _CHUNKED_THEN_HIDDEN)
                assert _statuses(_read_until_closed(sock)[0]) == [400]
        # Both connections held: uvicorn's 503 for each request past the cap,
        # and its warning for each.
        held = [_connect(up, "127.0.0.2"), _connect(up, "127.0.0.3")]
        time.sleep(0.3)
        assert [_get(up, "127.0.0.4") for _ in range(5)] == [503] * 5
        for sock in held:
            sock.close()
    finally:
        _, err = up.stop(signal.SIGINT)
    assert "Invalid HTTP request received." not in err
    refused = (
        "refused a request from 127.0.0.1 (400): both Content-Length and Transfer-Encoding in one request"
    )
    assert err.count(refused) == 1, err
    assert err.count("Exceeded concurrency limit.") == 1, err
