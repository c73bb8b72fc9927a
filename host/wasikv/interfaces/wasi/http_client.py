"""The HTTP/1.1 client behind `wasi:http/outgoing-handler`: policy first, streaming both ways.

```python
client = HttpClient()                                   # one per host; its event loop thread starts on use
body = BodyPipe(wake=instance.wake)                     # what the guest writes (outgoing-body's stream)
exchange = client.send(
    OutboundRequest("POST", "https", "api.example.com", "/v1/items", [("content-type", b"text/plain")], body),
    allowed_hosts,                                      # AllowedHosts: checked before anything is opened
    timeouts=Timeouts(connect=5.0),                     # request-options; wasmtime's 600 s defaults
    wake=instance.wake,
)
exchange.result        # None while pending, then a ResponseHead or a ClientError (future-incoming-response)
exchange.body.read(n)  # the response body (incoming-body's stream): b"" for now, None at its end
```

Every request is checked against the component's `allowed_outbound_hosts`
before anything leaves the process: a denied one never resolves a name nor
opens a connection. Requests go to the host the policy checked (a URL host
such as `0x7f.1` is connected to as 127.0.0.1). Redirects are the guest's
(a 3xx is an answer like any other), no proxy is ever used (`HTTP_PROXY`
and friends are not read), and `https` verifies certificates against the
system's CA store (`ssl.create_default_context()`) unless the host gives
its own context. Each request has its own connection, closed after it, as
wasmtime's own client does.

Bodies stream through `BodyPipe`s, bounded buffers between a guest's thread
and the client's event loop: a guest that writes faster than the server
reads waits for room (`space()`), a server that sends faster than the guest
reads is not read from until the guest drains the pipe (TCP backpressure),
so memory per request stays bounded whatever the body sizes. The request
body is sent while the response is read, so a server that streams its
answer while it reads (an echo) cannot deadlock the exchange.

Failures are values, never exceptions on the guest's path: a `ClientError`
whose `case` is a `wasi:http/types` `error-code` case, as the exchange's
result (before the response head) or as the response body's `error` (after
it). Timeouts follow wasmtime: `connect` bounds name resolution, TCP and
TLS (`connection-timeout`), `first_byte` the wait for the response head and
`between_bytes` each wait for body bytes (`connection-read-timeout`); the
wait for a guest to read or write is bounded by its own deadline, not here.

Why h11 over httpx/httpcore or a raw socket: h11 is already a dependency
(uvicorn's parser, pinned), it is only the HTTP/1.1 state machine, so
the client owns every byte it reads and writes: the policy check, the
connection (no pool, no proxy, no redirects), the timeouts and the
backpressure are all explicit here instead of configured away in a larger
client. asyncio gives TLS with full-duplex I/O on one thread (blocking SSL
sockets cannot read and write at once from two threads safely).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import ipaddress
import re
import socket
import ssl
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import h11

from ...allowed_hosts import AllowedHosts, Host, parse_host, split_authority

__all__ = [
    "DEFAULT_TIMEOUT",
    "BodyPipe",
    "ClientError",
    "Exchange",
    "HttpClient",
    "Limits",
    "OutboundRequest",
    "ResponseHead",
    "Timeouts",
]

#: wasmtime's (and Spin's) default for each timeout, in seconds.
DEFAULT_TIMEOUT = 600.0
_READ_SIZE = 64 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Connection-level headers are the client's to write; the guest's are dropped
# (wasi:http/types refuses them already; this is the last line).
_HOP_BY_HOP = frozenset(
    {"host", "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "http2-settings"}
)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_TARGET = re.compile(r"/[\x21-\x7e]*\Z")
# RFC 9110 8.6: a request whose method gives content a meaning says Content-Length: 0 when it has none.
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
Fields = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class ClientError:
    """A failed request or response body, as a `wasi:http/types` `error-code` case and its payload.

    The payload is shaped as the lead's codec writes it: records as dicts
    with their WIT field names (`DNS-error`: `{"rcode": ..., "info-code":
    ...}`), options as the value or None.
    """

    case: str
    payload: Any = None

    def __str__(self) -> str:
        return self.case if self.payload is None else f"{self.case}({self.payload})"


def _dns_error() -> ClientError:
    # wasmtime's payload for every resolution failure.
    return ClientError("DNS-error", {"rcode": "address not available", "info-code": None})


class _Failed(Exception):
    """Carries a `ClientError` out of the exchange's steps (never out of this module)."""

    def __init__(self, error: ClientError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class Timeouts:
    """A request's timeouts in seconds (`request-options`); wasmtime's defaults."""

    connect: float = DEFAULT_TIMEOUT
    first_byte: float = DEFAULT_TIMEOUT
    between_bytes: float = DEFAULT_TIMEOUT


@dataclass(frozen=True)
class Limits:
    """Per request: `buffer` bytes of response body held for the guest, the response head's
    size and header count, and optionally the response body's size."""

    buffer: int = 64 * 1024
    head_bytes: int = 64 * 1024
    headers: int = 100
    response_body: int | None = None


@dataclass(frozen=True)
class ResponseHead:
    """The status and headers (lower-case names, repeated ones kept) of a response."""

    status: int
    headers: Fields


# ----------------------------------------------------------------- pipes


class BodyPipe:
    """A bounded byte pipe between a thread (the guest's) and the client's event loop.

    Producer: `space()`, `write(data)`, `finish(trailers, error)`. Consumer:
    `readable()`, `read(n)`, `close_reader()`. Neither side blocks in these
    calls; a guest's blocking call waits for `readable()`/`writable()`
    through its instance, which `wake` (called after every change, outside
    the pipe's lock) tells to look again. `wait_readable`/`wait_writable`
    block other threads. The client's side awaits the same states.
    `peak` is the most bytes it ever held.
    """

    def __init__(self, capacity: int = 64 * 1024, wake: Callable[[], None] | None = None) -> None:
        if capacity < 1:
            raise ValueError("a pipe needs room for at least one byte")
        self.capacity = capacity
        self.peak = 0
        self.total = 0
        #: Why the body ended early (after `finish(error=...)`), else None.
        self.error: ClientError | None = None
        #: The trailers it ended with, if any.
        self.trailers: Fields | None = None
        #: Why the consumer went away (after `close_reader(error)`), else None.
        self.reader_error: ClientError | None = None
        self._wake = wake
        self._condition = threading.Condition(threading.Lock())
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._finished = False
        self._reader_closed = False
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    # -- producer

    def space(self) -> int:
        """How many bytes `write` takes now (0 when full; the capacity once the reader is gone)."""
        with self._condition:
            return self.capacity if self._reader_closed else self.capacity - self._buffered

    def writable(self) -> bool:
        """Whether `write` would take a byte or fail at once (the reader is gone)."""
        return self.space() > 0

    def write(self, data: bytes | memoryview) -> bool:
        """Append `data` (at most `space()` bytes); False, keeping nothing, when the reader is gone."""
        with self._condition:
            if self._finished:
                raise ValueError("write after finish")
            if self._reader_closed:
                return False
            if len(data) > self.capacity - self._buffered:
                raise ValueError(f"{len(data)} bytes written where {self.capacity - self._buffered} fit")
            if not data:
                return True
            self._chunks.append(bytes(data))
            self._buffered += len(data)
            self.total += len(data)
            self.peak = max(self.peak, self._buffered)
        self._changed()
        return True

    def finish(
        self, trailers: Sequence[tuple[str, bytes]] | None = None, error: ClientError | None = None
    ) -> None:
        """End the body, with `trailers` or as failed with `error`; later calls change nothing."""
        with self._condition:
            if self._finished:
                return
            self._finished = True
            self.error = error
            self.trailers = tuple(trailers) if trailers is not None else None
        self._changed()

    @property
    def finished(self) -> bool:
        """Whether the producer has ended the body."""
        with self._condition:
            return self._finished

    # -- consumer

    def readable(self) -> bool:
        """Whether `read` returns bytes or the end (rather than b"")."""
        with self._condition:
            return self._buffered > 0 or self._finished

    def read(self, max_bytes: int) -> bytes | None:
        """Up to `max_bytes` bytes: b"" when none have arrived yet, None at the end of the body.

        After None, `error` says whether the body failed and `trailers`
        holds its trailers.
        """
        with self._condition:
            if not self._buffered:
                return None if self._finished else b""
            taken: list[bytes] = []
            wanted = max_bytes
            while wanted > 0 and self._chunks:
                chunk = self._chunks[0]
                if len(chunk) <= wanted:
                    taken.append(self._chunks.popleft())
                    wanted -= len(chunk)
                else:
                    taken.append(chunk[:wanted])
                    self._chunks[0] = chunk[wanted:]
                    wanted = 0
            data = b"".join(taken)
            self._buffered -= len(data)
        if data:
            self._changed()
        return data

    def close_reader(self, error: ClientError | None = None) -> None:
        """The consumer is gone: what is held is dropped and later writes return False."""
        with self._condition:
            if self._reader_closed:
                return
            self._reader_closed = True
            self.reader_error = error
            self._chunks.clear()
            self._buffered = 0
        self._changed()

    @property
    def reader_closed(self) -> bool:
        """Whether the consumer has gone away."""
        with self._condition:
            return self._reader_closed

    # -- waiting (threads other than a guest's; the client's loop)

    def wait_readable(self, timeout: float | None = None) -> bool:
        """Block until `readable()` (True) or `timeout` seconds have passed (False)."""
        with self._condition:
            return self._condition.wait_for(lambda: self._buffered > 0 or self._finished, timeout)

    def wait_writable(self, timeout: float | None = None) -> bool:
        """Block until `writable()` (True) or `timeout` seconds have passed (False)."""
        with self._condition:
            return self._condition.wait_for(
                lambda: self._reader_closed or self._buffered < self.capacity, timeout
            )

    async def _until(self, ready: Callable[[], bool]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            with self._condition:
                if ready():
                    return
                future: asyncio.Future[None] = loop.create_future()
                self._waiters.append((loop, future))
            await future

    async def _put(self, data: bytes) -> bool:
        """Write all of `data`, waiting for room; False when the reader is gone."""
        view = memoryview(data)
        while view:
            await self._until(lambda: self._reader_closed or self._buffered < self.capacity)
            room = self.space()
            if not self.write(view[:room]):
                return False
            view = view[room:]
        return True

    async def _take(self, max_bytes: int) -> bytes | None:
        """Up to `max_bytes` bytes once there are some; None at the end."""
        await self._until(lambda: self._buffered > 0 or self._finished)
        return self.read(max_bytes)

    def _changed(self) -> None:
        with self._condition:
            self._condition.notify_all()
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            try:
                loop.call_soon_threadsafe(_settle, future)
            except RuntimeError:  # that loop is closed: its waiter is gone
                pass
        if self._wake is not None:
            self._wake()


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


# -------------------------------------------------------------- requests


@dataclass(frozen=True)
class OutboundRequest:
    """An `outgoing-request` as the guest built it.

    `scheme` None means https (wasmtime's default); `authority` None (or
    the host `self.alt`) is a request to the app itself; `path_with_query`
    None is `/`. `body` None sends no body; otherwise it is read until the
    guest finishes it, and a `content-length` header the guest set must
    match what it writes.
    """

    method: str
    scheme: str | None
    authority: str | None
    path_with_query: str | None = None
    headers: Sequence[tuple[str, bytes]] = ()
    body: BodyPipe | None = None


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: Host
    port: int
    host_header: str
    target: str


class Exchange:
    """One request in flight: `result` is None until its head arrives (or it fails); `body` is the
    response body."""

    def __init__(self, request: OutboundRequest, body: BodyPipe, wake: Callable[[], None] | None) -> None:
        self.request = request
        self.body = body
        self._wake = wake
        self._result: ResponseHead | ClientError | None = None
        self._resolved = threading.Event()
        self._future: concurrent.futures.Future[None] | None = None

    @property
    def result(self) -> ResponseHead | ClientError | None:
        """The response head, the error, or None while pending."""
        return self._result

    @property
    def done(self) -> bool:
        """Whether `result` is set."""
        return self._resolved.is_set()

    @property
    def sent(self) -> bool:
        """Whether the request went to the client's loop (False: it was refused before any I/O)."""
        return self._future is not None

    def wait(self, timeout: float | None = None) -> ResponseHead | ClientError | None:
        """Block until `result` is set or `timeout` seconds have passed (for threads other than a guest's)."""
        self._resolved.wait(timeout)
        return self._result

    def cancel(self) -> None:
        """Give up the request (the guest dropped it): its connection is closed; idempotent."""
        future = self._future
        if future is not None:
            future.cancel()
        self.body.close_reader()

    def _resolve(self, result: ResponseHead | ClientError) -> None:
        if self._resolved.is_set():
            return
        self._result = result
        self._resolved.set()
        if self._wake is not None:
            self._wake()


class HttpClient:
    """Sends `OutboundRequest`s on its own event loop thread (started on first use; `close` stops it).

    `ssl_context` verifies https servers (default: the system's CA store);
    `limits` bound each exchange.
    """

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._ssl_context = ssl_context
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._exchanges: set[Exchange] = set()

    def send(
        self,
        request: OutboundRequest,
        allowed: AllowedHosts,
        *,
        timeouts: Timeouts | None = None,
        wake: Callable[[], None] | None = None,
        self_origin: tuple[str, str] | None = None,
    ) -> Exchange:
        """Start `request` if `allowed` allows it; never raises, never blocks.

        A request that is invalid or not allowed comes back already failed
        (`HTTP-request-denied`, `HTTP-request-URI-invalid`, ...) before any
        name is resolved or connection opened. A request to the app itself
        goes to `self_origin` (scheme, authority) when `allowed` has `self`;
        without an origin it fails with `HTTP-request-URI-invalid`, as in
        Spin. `wake` is called whenever the result or the response body
        changes.
        """
        exchange = Exchange(request, BodyPipe(self.limits.buffer, wake), wake)
        target = _target(request, allowed, self_origin)
        if isinstance(target, ClientError):
            self._fail_early(exchange, target)
            return exchange
        loop = self._running_loop()
        with self._lock:
            self._exchanges.add(exchange)
        coroutine = _Run(self, exchange, target, timeouts or Timeouts()).run()
        exchange._future = asyncio.run_coroutine_threadsafe(coroutine, loop)
        exchange._future.add_done_callback(lambda _: self._forget(exchange))
        return exchange

    @staticmethod
    def refusal(
        request: OutboundRequest, allowed: AllowedHosts, *, self_origin: tuple[str, str] | None = None
    ) -> ClientError | None:
        """Why `send` would refuse `request` before opening anything (None: it would send it)."""
        target = _target(request, allowed, self_origin)
        return target if isinstance(target, ClientError) else None

    def close(self) -> None:
        """Cancel every exchange in flight and stop the loop thread."""
        with self._lock:
            exchanges, self._exchanges = list(self._exchanges), set()
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        for exchange in exchanges:
            exchange.body.close_reader()
        if loop is None or thread is None:
            return
        try:
            # Cancelled exchanges close their connections before the loop stops.
            asyncio.run_coroutine_threadsafe(_cancel_all(), loop).result(timeout=10)
        except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
            pass
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()

    def _fail_early(self, exchange: Exchange, error: ClientError) -> None:
        exchange._resolve(error)
        exchange.body.finish(error=error)
        if exchange.request.body is not None:
            exchange.request.body.close_reader(error)

    def _forget(self, exchange: Exchange) -> None:
        with self._lock:
            self._exchanges.discard(exchange)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="wasikv-http-client", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def _context(self) -> ssl.SSLContext:
        with self._lock:
            if self._ssl_context is None:
                context = ssl.create_default_context()
                context.set_alpn_protocols(["http/1.1"])
                self._ssl_context = context
            return self._ssl_context


async def _cancel_all() -> None:
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _target(
    request: OutboundRequest, allowed: AllowedHosts, origin: tuple[str, str] | None
) -> _Target | ClientError:
    """Where `request` goes, or why it goes nowhere; the policy is checked here, before any I/O."""
    if not _TOKEN.match(request.method):
        return ClientError("HTTP-request-method-invalid")
    if request.method.upper() == "CONNECT":  # a tunnel, which this client does not make
        return ClientError("HTTP-request-method-invalid")
    scheme = (request.scheme or "https").lower()
    path = request.path_with_query or "/"
    if not (_TARGET.match(path) or (path == "*" and request.method == "OPTIONS")):
        return ClientError("HTTP-request-URI-invalid")
    authority = request.authority or ""
    to_self = not authority or authority.rpartition("@")[2].partition(":")[0] == "self.alt"
    if to_self:
        # Spin: a relative URL (or the host self.alt) is the app itself, allowed by `self`.
        if not allowed.allows_self(("http", "https")):
            return ClientError("HTTP-request-denied")
        if origin is None:
            return ClientError("HTTP-request-URI-invalid")
        scheme, authority = origin
    if scheme not in _DEFAULT_PORTS:
        return ClientError("HTTP-protocol-error")
    try:
        host_text, port = split_authority(authority)
        host = parse_host(host_text)
    except ValueError:
        return ClientError("HTTP-request-URI-invalid")
    if not to_self and not allowed.allows(scheme, host, port):
        return ClientError("HTTP-request-denied")
    host_header = authority.rpartition("@")[2]
    return _Target(scheme, host, port or _DEFAULT_PORTS[scheme], host_header, path)


class _Run:
    """One exchange on the loop: connect, send the head, stream the body while reading the response."""

    def __init__(self, client: HttpClient, exchange: Exchange, target: _Target, timeouts: Timeouts) -> None:
        self.client = client
        self.exchange = exchange
        self.target = target
        self.timeouts = timeouts
        self.limits = client.limits
        self.connection = h11.Connection(h11.CLIENT, max_incomplete_event_size=self.limits.head_bytes)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        #: Why sending the request failed; the reader reports it instead of the closed connection.
        self.send_error: ClientError | None = None
        #: Whether the server has closed its side.
        self.eof = False

    async def run(self) -> None:
        exchange = self.exchange
        sender: asyncio.Task[None] | None = None
        try:
            head, body_length = self._head()
            self.reader, self.writer = await self._connect()
            self.writer.write(self.connection.send(head) or b"")
            sender = asyncio.create_task(self._send_body(body_length))
            exchange._resolve(await self._receive_head())
            await self._receive_body()
        except _Failed as failed:
            self._fail(failed.error)
        except asyncio.CancelledError:
            self._fail(ClientError("internal-error", "the request was cancelled"))
            raise
        except Exception as exc:  # a bug here must not leave the guest waiting forever
            self._fail(ClientError("internal-error", f"{type(exc).__name__}: {exc}"))
        finally:
            if sender is not None:
                sender.cancel()
            if self.writer is not None:
                self.writer.transport.abort()
            request_body = exchange.request.body
            if request_body is not None and not request_body.finished:
                # The exchange is over: the guest's further writes fail.
                request_body.close_reader(self.send_error)

    def _fail(self, error: ClientError) -> None:
        if self.exchange.done:
            self.exchange.body.finish(error=error)
        else:
            self.exchange._resolve(error)
            self.exchange.body.finish(error=error)

    # -- the request

    def _head(self) -> tuple[h11.Request, int | None]:
        """The request head and the body's length (None: chunked)."""
        request, target = self.exchange.request, self.target
        headers: list[tuple[bytes, bytes]] = [(b"host", target.host_header.encode("ascii", "replace"))]
        declared: int | None = None
        for name, value in request.headers:
            lowered = name.lower()
            if lowered in _HOP_BY_HOP:
                continue
            if lowered == "content-length":
                if declared is not None or not value.isdigit():
                    raise _Failed(ClientError("HTTP-protocol-error"))
                declared = int(value)
                continue
            headers.append((name.encode("latin-1", "replace"), value))
        body = request.body
        if body is None:
            if declared:
                raise _Failed(ClientError("HTTP-request-body-size", 0))
            length: int | None = 0
            if declared == 0 or request.method.upper() in _BODY_METHODS:
                headers.append((b"content-length", b"0"))
        elif declared is not None:
            length = declared
            headers.append((b"content-length", str(declared).encode()))
        elif body.finished and body.error is None and not body.trailers:
            # The guest wrote it all before sending: a length instead of chunks.
            length = body.total
            headers.append((b"content-length", str(length).encode()))
        else:
            length = None
            headers.append((b"transfer-encoding", b"chunked"))
        try:
            return h11.Request(method=request.method, target=target.target, headers=headers), length
        except h11.LocalProtocolError:
            raise _Failed(ClientError("HTTP-protocol-error")) from None

    async def _send_body(self, length: int | None) -> None:
        writer, body = self.writer, self.exchange.request.body
        assert writer is not None
        try:
            sent = 0
            if body is not None:
                while (chunk := await body._take(_READ_SIZE)) is not None:
                    sent += len(chunk)
                    if length is not None and sent > length:
                        raise _Failed(ClientError("HTTP-request-body-size", sent))
                    writer.write(self.connection.send(h11.Data(data=chunk)) or b"")
                    await writer.drain()
                if body.error is not None:
                    raise _Failed(body.error)
                if length is not None and sent != length:
                    raise _Failed(ClientError("HTTP-request-body-size", sent))
            trailers = [
                (name.encode("latin-1", "replace"), value)
                for name, value in (body.trailers or () if body is not None and length is None else ())
            ]
            writer.write(self.connection.send(h11.EndOfMessage(headers=trailers)) or b"")
            await writer.drain()
        except _Failed as failed:
            self.send_error = failed.error
            writer.transport.abort()
        except h11.LocalProtocolError:
            self.send_error = ClientError("HTTP-protocol-error")
            writer.transport.abort()
        except OSError:
            pass  # the server closed: what it answered (if anything) is read on
        except Exception as exc:  # a bug here must not leave the exchange waiting for its timeout
            self.send_error = ClientError("internal-error", f"{type(exc).__name__}: {exc}")
            writer.transport.abort()

    # -- the connection

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        target, loop = self.target, asyncio.get_running_loop()
        sock: socket.socket | None = None
        try:
            async with asyncio.timeout(self.timeouts.connect):
                sock = await self._open_socket(loop)
                context = self.client._context() if target.scheme == "https" else None
                server_name = None
                if context is not None:
                    host = target.host
                    server_name = host.rstrip(".") if isinstance(host, str) else str(host)
                reader, writer = await asyncio.open_connection(
                    sock=sock,
                    ssl=context,
                    server_hostname=server_name,
                    limit=_READ_SIZE,
                    ssl_handshake_timeout=self.timeouts.connect + 1 if context is not None else None,
                )
                sock = None
                return reader, writer
        except TimeoutError:
            raise _Failed(ClientError("connection-timeout")) from None
        except ssl.SSLCertVerificationError:
            raise _Failed(ClientError("TLS-certificate-error")) from None
        except ssl.SSLError as exc:
            if "ALERT" in (exc.reason or ""):
                alert = {"alert-id": None, "alert-message": exc.reason}
                raise _Failed(ClientError("TLS-alert-received", alert)) from None
            raise _Failed(ClientError("TLS-protocol-error")) from None
        except OSError:
            # Closed during the TLS handshake (a plain connection has none).
            raise _Failed(ClientError("TLS-protocol-error")) from None
        finally:
            if sock is not None:
                sock.close()

    async def _open_socket(self, loop: asyncio.AbstractEventLoop) -> socket.socket:
        """A TCP connection to the target, trying each address its name resolves to in turn."""
        host, port = self.target.host, self.target.port
        if isinstance(host, ipaddress.IPv6Address):
            addresses: list[tuple[int, tuple[Any, ...]]] = [(socket.AF_INET6, (str(host), port, 0, 0))]
        elif isinstance(host, ipaddress.IPv4Address):
            addresses = [(socket.AF_INET, (str(host), port))]
        else:
            try:
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except (socket.gaierror, UnicodeError):
                raise _Failed(_dns_error()) from None
            addresses = [(family, address) for family, _, _, _, address in infos]
        if not addresses:
            raise _Failed(_dns_error())
        failure: OSError | None = None
        for family, address in addresses:
            sock: socket.socket | None = None
            try:
                sock = socket.socket(family, socket.SOCK_STREAM)
                sock.setblocking(False)
                await loop.sock_connect(sock, address)
            except OSError as exc:
                if sock is not None:
                    sock.close()
                failure = failure or exc
                continue
            except BaseException:
                if sock is not None:
                    sock.close()
                raise
            return sock
        # As wasmtime: an address that cannot be used is a DNS error, any other failure
        # (refused, unreachable) connection-refused.
        if failure is not None and failure.errno == errno.EADDRNOTAVAIL:
            raise _Failed(_dns_error()) from failure
        raise _Failed(ClientError("connection-refused")) from failure

    # -- the response

    async def _next_event(self, timeout: float) -> Any:
        """The next h11 event, reading (for at most `timeout` seconds each time) as it needs."""
        connection, reader = self.connection, self.reader
        assert reader is not None
        while True:
            try:
                event = connection.next_event()
            except h11.RemoteProtocolError as exc:
                raise _Failed(self._protocol_error(exc)) from None
            if event is not h11.NEED_DATA:
                return event
            try:
                async with asyncio.timeout(timeout):
                    data = await reader.read(_READ_SIZE)
            except TimeoutError:
                raise _Failed(ClientError("connection-read-timeout")) from None
            except OSError:
                raise _Failed(self.send_error or ClientError("connection-terminated")) from None
            if not data:
                if self.send_error is not None:
                    raise _Failed(self.send_error)
                self.eof = True
            connection.receive_data(data)

    def _protocol_error(self, exc: h11.RemoteProtocolError) -> ClientError:
        if self.send_error is not None:
            return self.send_error
        if exc.error_status_hint == 431:
            return ClientError("HTTP-response-header-section-size", None)
        if self.eof:
            return ClientError("HTTP-response-incomplete")
        return ClientError("HTTP-protocol-error")

    async def _receive_head(self) -> ResponseHead:
        deadline = asyncio.get_running_loop().time() + self.timeouts.first_byte
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise _Failed(ClientError("connection-read-timeout"))
            event = await self._next_event(remaining)
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                # h11 bounds only a head still arriving; one that came whole is measured here.
                size = sum(len(name) + len(value) + 4 for name, value in event.headers)
                if len(event.headers) > self.limits.headers or size > self.limits.head_bytes:
                    raise _Failed(ClientError("HTTP-response-header-section-size", None))
                return ResponseHead(event.status_code, _fields(event.headers))
            raise _Failed(self.send_error or ClientError("HTTP-response-incomplete"))

    async def _receive_body(self) -> None:
        body, limit = self.exchange.body, self.limits.response_body
        received = 0
        while True:
            event = await self._next_event(self.timeouts.between_bytes)
            if isinstance(event, h11.Data):
                received += len(event.data)
                if limit is not None and received > limit:
                    raise _Failed(ClientError("HTTP-response-body-size", received))
                if not await body._put(bytes(event.data)):
                    return  # the guest dropped the body: the connection is closed
            elif isinstance(event, h11.EndOfMessage):
                body.finish(trailers=_fields(event.headers) if event.headers else None)
                return
            else:
                raise _Failed(ClientError("HTTP-response-incomplete"))


def _fields(headers: Any) -> Fields:
    return tuple((bytes(name).decode("latin-1"), bytes(value)) for name, value in headers)
