"""A real HTTP/1.1 server on a loopback port for the outbound client's tests.

One thread per connection runs `handler(exchange)`; `LocalServer.connections`
counts every TCP connection accepted, so a test can assert that nothing
reached the server. Built on h11 so that handlers stream bodies both ways
and see request trailers.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import h11

__all__ = ["Handler", "LocalServer", "ServerExchange"]


@dataclass
class ServerExchange:
    """One request as the server sees it; the handler answers through it."""

    sock: socket.socket
    connection: h11.Connection
    request: h11.Request
    #: Set when the server closes: a handler that keeps the client waiting waits for it.
    closing: threading.Event
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)
    #: Response body bytes handed to the socket so far.
    sent: int = 0

    @property
    def headers(self) -> dict[str, str]:
        """The request headers (lower-case names; repeated ones joined with ', ')."""
        joined: dict[str, str] = {}
        for name, value in self.request.headers:
            key = name.decode()
            joined[key] = f"{joined[key]}, {value.decode()}" if key in joined else value.decode()
        return joined

    def _event(self) -> object:
        while True:
            event = self.connection.next_event()
            if event is not h11.NEED_DATA:
                return event
            self.connection.receive_data(self.sock.recv(64 * 1024))

    def body(self) -> Iterator[bytes]:
        """The request body, chunk by chunk as it arrives."""
        while True:
            event = self._event()
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self.trailers = list(event.headers)
                return
            else:
                raise AssertionError(f"unexpected {event!r}")

    def read_body(self) -> bytes:
        """The whole request body."""
        return b"".join(self.body())

    def respond(self, status: int, headers: Sequence[tuple[str, str]] = ()) -> None:
        """Send the response head."""
        self.sock.sendall(
            self.connection.send(h11.Response(status_code=status, headers=list(headers))) or b""
        )

    def send(self, data: bytes) -> None:
        """Send body bytes (blocks while the client does not read)."""
        self.sock.sendall(self.connection.send(h11.Data(data=data)) or b"")
        self.sent += len(data)

    def end(self, trailers: Sequence[tuple[str, str]] = ()) -> None:
        """End the response body."""
        self.sock.sendall(self.connection.send(h11.EndOfMessage(headers=list(trailers))) or b"")

    def reply(self, status: int, body: bytes, headers: Sequence[tuple[str, str]] = ()) -> None:
        """Answer with `body` and its length."""
        self.respond(status, [*headers, ("content-length", str(len(body)))])
        self.send(body)
        self.end()


Handler = Callable[[ServerExchange], object]


class LocalServer:
    """Serves `handler` on 127.0.0.1 (TLS with `tls`) until `close()`."""

    def __init__(self, handler: Handler | None = None, *, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler or (lambda exchange: exchange.reply(200, exchange.read_body()))
        self.tls = tls
        self.connections = 0
        self.exchanges: list[ServerExchange] = []
        self.errors: list[BaseException] = []
        #: Set at close: handlers that wait for it (a silent server) return.
        self.closing = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def authority(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._sockets.append(sock)
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        try:
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True)
                with self._lock:
                    self._sockets.append(sock)
            connection = h11.Connection(h11.SERVER)
            while (request := connection.next_event()) is h11.NEED_DATA:
                connection.receive_data(sock.recv(64 * 1024))
            if not isinstance(request, h11.Request):
                return
            exchange = ServerExchange(sock, connection, request, self.closing)
            with self._lock:
                self.exchanges.append(exchange)
            self.handler(exchange)
        except (OSError, h11.ProtocolError) as exc:
            if not self.closing.is_set():
                self.errors.append(exc)
        finally:
            sock.close()

    def close(self) -> None:
        self.closing.set()
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
