"""`wasikv up`: serving an app's HTTP triggers with uvicorn.

uvicorn closes idle keep-alive connections, but gives a client unlimited
time to send a request's headers (its keep-alive timer starts only after a
first response, and any byte cancels it), so slow or silent connections
could be held up to the descriptor limit. `_GuardedH11Protocol` adds a
deadline for the request line and headers of every request (the body has
its own in the ASGI app), and a cap on the connections one client holds at
once, so that one client cannot take all of `limit_concurrency`'s.

It also refuses request heads whose framing a proxy in front could read
differently from h11 (request smuggling, RFC 9112 6.1, 6.3 and 5.2): both
Content-Length and Transfer-Encoding, Transfer-Encoding in HTTP/1.0, and
obsolete line folding, which h11 accepts. h11 itself refuses differing
Content-Lengths, a Transfer-Encoding other than `chunked`, whitespace
before a colon and malformed chunks (since 0.16). Every refusal is a 400
(501 for a transfer coding, 431 for a head too large) naming the problem,
and closes the connection, so nothing after it is read as a request.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import math
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

import h11
import uvicorn
from h11._events import Event
from h11._receivebuffer import ReceiveBuffer
from h11._util import Sentinel
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import STATUS_PHRASES, H11Protocol
from uvicorn.server import ServerState

from ..app.triggers import TRIGGER_KINDS
from ..errors import ConfigError
from ..limits import (
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_KEEP_ALIVE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    default_connections_per_client,
)
from . import health_http
from .asgi import WasikvApp
from .children_health import HEALTH_DIR_ENV
from .health import Health, store_probes
from .health_http import health_app, metrics_app, register_child
from .listeners import Listeners, bind_listeners
from .logs import log_to_stderr
from .processes import process_index
from .server_headers import ServerHeaders

if TYPE_CHECKING:
    from .watch_mode import Rebuilder

log = logging.getLogger("wasikv")


@dataclass(frozen=True)
class ServerLimits:
    """How long clients may take, and how many may be connected at once."""

    #: Seconds from a connection's first byte (or from accepting it) to the end of a request's headers.
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    #: Seconds an idle keep-alive connection stays open between requests.
    keep_alive_timeout: float = DEFAULT_KEEP_ALIVE_TIMEOUT
    #: Connections (and requests in flight) at once; past it, 503.
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    #: Connections one client (an IPv4 address, or an IPv6 /64) may hold at
    #: once; past it, a new one is closed unanswered. None: the default share
    #: of `max_connections` (see `default_connections_per_client`). At or above
    #: `max_connections`, there is no per-client cap.
    max_connections_per_client: int | None = None

    def __post_init__(self) -> None:
        if (
            self.header_timeout <= 0
            or self.keep_alive_timeout <= 0
            or self.max_connections < 1
            or (self.max_connections_per_client is not None and self.max_connections_per_client < 1)
        ):
            raise ConfigError(f"invalid server limits: {self}")

    @property
    def connections_per_client(self) -> int | None:
        """`max_connections_per_client` (or its default); None if it is no tighter than `max_connections`."""
        limit = self.max_connections_per_client
        if limit is None:
            limit = default_connections_per_client(self.max_connections)
        # Past max_connections, requests are answered 503 (more telling than
        # a closed connection), whoever the client.
        return limit if limit < self.max_connections else None


#: Seconds between two log lines about the same kind of refused client (the
#: ones in between are counted): an attacker must not flood the log.
LOG_INTERVAL = 10.0


class _Throttled:
    """A kind of log line let through at most once every `LOG_INTERVAL` seconds; the next one
    counts those held back."""

    def __init__(self) -> None:
        self._next = 0.0
        self._skipped = 0

    def passes(self) -> str | None:
        """None if this line is held back; else what to append to it (the count held back, if any)."""
        now = time.monotonic()
        if now < self._next:
            self._skipped += 1
            return None
        self._next = now + LOG_INTERVAL
        skipped, self._skipped = self._skipped, 0
        return f" (and {skipped} more like it since the last such line)" if skipped else ""

    def warning(self, message: str, *args: object) -> None:
        """`log.warning(message, *args)`, throttled."""
        suffix = self.passes()
        if suffix is not None:
            log.warning(message + suffix, *args)


#: The warnings uvicorn logs once per request, at a client's bidding: throttled.
_PER_REQUEST_WARNINGS = (
    "Exceeded concurrency limit.",
    "Unsupported upgrade request.",
    "No supported WebSocket library detected.",
)


class _ThrottleUvicornWarnings(logging.Filter):
    """Throttles uvicorn's `_PER_REQUEST_WARNINGS`, and drops its "Invalid HTTP request received."
    (`_GuardedH11Protocol.send_400_response` logs why, throttled) and its "ASGI callable returned
    without completing response." (the app logged why it cut a response short)."""

    def __init__(self) -> None:
        super().__init__()
        self._throttles = {message: _Throttled() for message in _PER_REQUEST_WARNINGS}

    def filter(self, record: logging.LogRecord) -> bool:
        if not isinstance(record.msg, str):
            return True
        if (
            record.levelno == logging.ERROR
            and record.msg == "ASGI callable returned without completing response."
        ):
            # A wasi:http guest's body ended unfinished: wasikv.server.asgi logged why.
            return False
        if record.levelno != logging.WARNING:
            return True
        if record.msg == "Invalid HTTP request received.":
            return False
        for message, throttle in self._throttles.items():
            if record.msg.startswith(message):
                suffix = throttle.passes()
                if suffix is None:
                    return False
                record.msg += suffix
        return True


def _throttle_uvicorn_warnings() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(existing, _ThrottleUvicornWarnings) for existing in logger.filters):
        logger.addFilter(_ThrottleUvicornWarnings())


def _client_key(client: tuple[str, int] | None) -> str | None:
    """Whose connection it is: the peer's IPv4 address, or its IPv6 /64 (a host's usual share); None
    when there is no IP address (a Unix socket)."""
    if not client:
        return None
    try:
        address = ipaddress.ip_address(client[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class _ClientConnections:
    """How many connections each client holds, against a cap if any (one server's, in its event loop)."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._held: dict[str, int] = {}
        self._refusals = _Throttled()

    def admit(self, client: str) -> bool:
        """Count a new connection from `client`, unless it holds `limit` already (then log, throttled)."""
        held = self._held.get(client, 0)
        if self.limit is not None and held >= self.limit:
            self._refusals.warning(
                "closed a connection from %s at once: over the per-client limit (%d connections)",
                client,
                self.limit,
            )
            return False
        self._held[client] = held + 1
        return True

    def release(self, client: str) -> None:
        """A connection `admit` counted has closed."""
        held = self._held[client] - 1
        if held:
            self._held[client] = held
        else:
            del self._held[client]


def _check_framing(request: h11.Request) -> None:
    """Refuse the framing h11 accepts but RFC 9112 lets a server refuse, since another parser
    (a proxy in front) may delimit the body differently."""
    names = {name for name, _ in request.headers}
    if b"transfer-encoding" in names:
        if b"content-length" in names:
            raise h11.LocalProtocolError(
                "both Content-Length and Transfer-Encoding in one request (RFC 9112 6.3)"
            )
        if request.http_version == b"1.0":
            raise h11.LocalProtocolError("Transfer-Encoding in an HTTP/1.0 request (RFC 9112 6.1)")


class _RefuseFolding:
    """A view of h11's receive buffer whose request heads may not use obsolete line folding."""

    def __init__(self, buffer: ReceiveBuffer) -> None:
        self._buffer = buffer

    def maybe_extract_lines(self) -> list[bytearray] | None:
        lines = self._buffer.maybe_extract_lines()
        # h11 joins a line starting with a space or tab to the one before it
        # (RFC 9112 5.2 allows that, or a 400); a parser in front that does
        # not would see other headers.
        if lines and any(line.startswith((b" ", b"\t")) for line in lines[1:]):
            raise h11.LocalProtocolError("obsolete line folding in the request's headers (RFC 9112 5.2)")
        return lines

    def __getattr__(self, name: str) -> Any:
        return getattr(self._buffer, name)


def _read_head(read: Callable[[Any], h11.Request | None], buffer: ReceiveBuffer) -> h11.Request | None:
    request = read(_RefuseFolding(buffer))
    if request is not None:
        _check_framing(request)
    return request


class _StrictH11Connection(h11.Connection):
    """h11's server side, refusing the request heads `_check_framing` and `_RefuseFolding` refuse,
    and keeping the reason it refused a request."""

    rejection: h11.RemoteProtocolError | None = None

    def next_event(self) -> Event | type[h11.NEED_DATA] | type[h11.PAUSED]:
        try:
            return super().next_event()
        except h11.RemoteProtocolError as exc:
            self.rejection = exc
            raise

    def _get_io_object(
        self, role: type[Sentinel], event: Event | None, io_dict: Any
    ) -> Callable[..., Any] | None:
        io = super()._get_io_object(role, event, io_dict)
        # h11 reads a request's head with the reader it keeps for the client
        # in IDLE; a refusal there (a LocalProtocolError) is h11's own: the
        # client's state becomes ERROR and uvicorn answers and closes.
        if io is not None and role is h11.CLIENT and self.their_state is h11.IDLE:
            return functools.partial(_read_head, io)
        return io


class _GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's line and headers, a cap on each
    client's connections, and no ambiguous request framing (see the module's docstring)."""

    header_timeout = DEFAULT_HEADER_TIMEOUT
    #: One server's clients, and its throttled logs of slow ones and bad requests (set by `_protocol`).
    clients: ClassVar[_ClientConnections]
    slow_clients: ClassVar[_Throttled]
    bad_requests: ClassVar[_Throttled]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        size = config.h11_max_incomplete_event_size
        self.conn = (
            _StrictH11Connection(h11.SERVER) if size is None else _StrictH11Connection(h11.SERVER, size)
        )
        self._client_key: str | None = None
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        key = _client_key(self.client)
        if key is not None and not self.clients.admit(key):
            # Closed before reading anything: the cheapest answer to a client
            # that opens connections faster than it uses them.
            self.transport.close()
            return
        self._client_key = key
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:
            self._arm_header_timer()  # a request has begun (or is awaited): its headers are due
        else:
            self._cancel_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        if self._client_key is not None:
            self.clients.release(self._client_key)
            self._client_key = None
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        """Answer a refused request with h11's status (400, 431 or 501) and reason, then close."""
        rejection = self.conn.rejection if isinstance(self.conn, _StrictH11Connection) else None
        status = (
            400
            if rejection is None or not 400 <= rejection.error_status_hint < 600
            else rejection.error_status_hint
        )
        reason = msg if rejection is None else str(rejection)
        self.bad_requests.warning(
            "refused a request from %s (%d): %s", self.client[0] if self.client else "?", status, reason
        )
        # The reason may quote the request's bytes: plain text, never sniffed as HTML.
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"x-content-type-options", b"nosniff"),
            (b"connection", b"close"),
        ]
        phrase = STATUS_PHRASES.get(status, b"")
        body = phrase + b": " + reason.encode("ascii", "backslashreplace") + b"\n"
        for event in (
            h11.Response(status_code=status, headers=headers, reason=phrase),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event) or b"")
        self.transport.close()

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.slow_clients.warning(
                "closed a connection from %s: no request headers within %g s",
                self.client,
                self.header_timeout,
            )
            self.transport.close()


def parse_listen(listen: str, option: str = "--listen") -> tuple[str, int]:
    """`HOST:PORT` (IPv6 as `[::1]:3000`) → (host, port); the error names `option`."""
    address, sep, port = listen.rpartition(":")
    if not sep or not address or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{option} {listen!r}: expected HOST:PORT, e.g. 127.0.0.1:3000")
    return address.strip("[]"), int(port)


#: Seconds in-flight requests get to finish after SIGINT/SIGTERM when the app's
#: requests have no time limit (otherwise: the request timeout); the server is
#: gone a few seconds after that.
SHUTDOWN_GRACE = 5.0


def drain_timeout(app: WasikvApp, drain: float | None = None) -> float:
    """Seconds in-flight work gets after SIGINT/SIGTERM: `drain`, or by default the app's request timeout."""
    if drain is not None:
        return drain
    return SHUTDOWN_GRACE if app.request_timeout is None else app.request_timeout


def _protocol(limits: ServerLimits) -> type[H11Protocol]:
    return type(
        "GuardedH11Protocol",
        (_GuardedH11Protocol,),
        {
            "header_timeout": limits.header_timeout,
            "clients": _ClientConnections(limits.connections_per_client),
            "slow_clients": _Throttled(),
            "bad_requests": _Throttled(),
        },
    )


class _Server(uvicorn.Server):
    """uvicorn's server, which also drains the app (and says so to readiness) when told to exit.

    With a `delay`, it goes on accepting connections for that long after
    readiness turned 503 (so load balancers stop sending first), then drains.
    """

    def __init__(
        self, config: uvicorn.Config, app: WasikvApp, health: Health, drain: float, delay: float = 0.0
    ) -> None:
        super().__init__(config)
        self.wasikv_app = app
        self.health = health
        self.drain = drain
        self.delay = delay
        #: Whether a first signal was received (the drain may not have begun yet).
        self.exiting = False

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self.health.serving(asyncio.get_running_loop())

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A first signal lets in-flight work finish for a while; a second
        # ends the process at once.
        if self.exiting:
            force_exit(sig)
        self.exiting = True
        # Not ready from now on, before the port stops accepting.
        self.health.stopping()
        if self.delay > 0 and not self.should_exit:
            timer = threading.Timer(self.delay, self._begin_drain, (sig, frame))
            timer.daemon = True
            timer.start()
        else:
            self._begin_drain(sig, frame)

    def _begin_drain(self, sig: int, frame: FrameType | None) -> None:
        self.wasikv_app.drain(self.drain)
        super().handle_exit(sig, frame)


def force_exit(sig: int) -> NoReturn:
    """End the process now, as a second SIGINT/SIGTERM asks: exit status 128 + `sig`, no traceback.

    Nothing acknowledged is lost: every write a client was told succeeded
    is committed in its store already. Guests still running are abandoned.
    """
    name = signal.Signals(sig).name
    try:
        print(f"wasikv: stopped at once (second {name})", file=sys.stderr, flush=True)
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    os._exit(128 + sig)


def serve(
    app: WasikvApp,
    listen: str = "127.0.0.1:3000",
    limits: ServerLimits | None = None,
    *,
    metrics_listen: str | None = None,
    health_listen: str | None = None,
    drain: float | None = None,
    drain_delay: float = 0.0,
    listeners: Listeners | None = None,
    rebuilder: Rebuilder | None = None,
) -> None:
    """Serve `app` until SIGINT or SIGTERM (Ctrl-C), then drain and stop.

    A first signal makes readiness fail, then (`drain_delay` seconds later)
    stops accepting connections and gives requests in progress and watcher
    batches `drain` seconds (default: the app's request timeout, see
    `drain_timeout`) to finish; the server is gone a few seconds after that.

    As a child of `up --processes` (see `wasikv.server.processes`), it listens on a
    socket of its own on the same port and prints nothing at start-up; the
    supervisor serves the metrics and the probes. Otherwise `metrics_listen`
    (HOST:PORT) serves `app.metrics` there with `/livez` and `/readyz`
    (see `wasikv.server.health`), and `health_listen` serves the probes alone.
    `listeners`, if given, are those addresses bound already (`bind_listeners`,
    before the app was built and compiled), and served here.
    A `rebuilder` (`up --watch`) runs from the announcement until the server stops.
    """
    host, port = parse_listen(listen)
    limits = limits or ServerLimits()
    index = process_index()
    child = index is not None
    drain = drain_timeout(app, drain)
    health = Health(store_probes(app.host))
    try:
        if listeners is None:
            listeners = bind_listeners(
                (host, port),
                None if metrics_listen is None else parse_listen(metrics_listen, "--metrics"),
                None if health_listen is None else parse_listen(health_listen, "--health"),
                child=child,
            )
        _serve_health(app, health, index, listeners)
    except BaseException:
        app.close()
        raise
    assert listeners.app is not None, "the supervisor of --processes serves no app"
    log_to_stderr()
    config = uvicorn.Config(
        # The guest's own date and server headers win over the server's.
        ServerHeaders(app),
        server_header=False,
        date_header=False,
        host=host,
        port=port,
        access_log=False,
        lifespan="on",
        log_level="warning",
        timeout_graceful_shutdown=math.ceil(drain) + 2,
        http=_protocol(limits),
        # No WebSocket upgrades (the app serves none), even with a WebSocket
        # library installed: an upgraded connection leaves the protocol that
        # counts it and times its headers.
        ws="none",
        timeout_keep_alive=int(limits.keep_alive_timeout),
        limit_concurrency=limits.max_connections,
    )
    _throttle_uvicorn_warnings()
    server = _Server(config, app, health, drain, drain_delay)
    sockets = [listeners.app]
    if not child:
        announce(app, host, port)
    if rebuilder is not None:
        rebuilder.start()

    # uvicorn installs its own handlers only while it serves, then re-raises
    # the signals it caught with the handlers it found. A SIGTERM outside that
    # window (while it starts, or re-raised after it stopped) must neither
    # kill the process nor raise at a random point of the event loop (an
    # exception there is logged and swallowed, and the process never exits):
    # it asks the server to stop, and the exit status is 0, as after Ctrl-C.
    def stop(signum: int, frame: FrameType | None) -> None:
        if not server.exiting:
            server.handle_exit(signum, frame)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        server.run(sockets=sockets)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        if rebuilder is not None:
            rebuilder.stop()
    if not child:
        print("Stopped", flush=True)


def _serve_health(app: WasikvApp, health: Health, index: int | None, listeners: Listeners) -> None:
    """Serve the probes (and metrics) on their listeners: a child's on a loopback port its supervisor asks."""
    if index is not None:
        directory = os.environ.get(HEALTH_DIR_ENV)
        if directory:
            server = health_http.listen("127.0.0.1", 0, health_app(health), "the probes' listener")
            try:
                register_child(directory, index, server.server_port)
            except OSError as exc:  # the supervisor is stopping (its directory is gone)
                log.warning("cannot tell the supervisor where the probes are: %s", exc)
        return
    if listeners.metrics is not None:
        metrics = None if app.metrics is None else metrics_app(app.metrics.scrape_registry())
        health_http.start(listeners.metrics, health_app(health, metrics))
    if listeners.health is not None:
        health_http.start(listeners.health, health_app(health))


def announce(app: WasikvApp, host: str, port: int, processes: int = 1) -> None:
    """Print where the app is served and its triggers."""
    suffix = f" ({processes} processes)" if processes > 1 else ""
    print(f"Serving http://{host}:{port}{suffix}", flush=True)
    for kind in TRIGGER_KINDS:
        for trigger in app.loaded.manifest.of_kind(kind):
            print(f"  {kind.describe(trigger)}", flush=True)
