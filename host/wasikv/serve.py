"""`wasikv up`: serving an app's HTTP triggers with uvicorn.

uvicorn closes idle keep-alive connections, but gives a client unlimited
time to send a request's headers (its keep-alive timer starts only after a
first response, and any byte cancels it), so slow or silent connections
could be held up to the descriptor limit. `_GuardedH11Protocol` adds a
deadline for the request line and headers of every request; the body has
its own in the ASGI app; `limit_concurrency` caps connections.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from dataclasses import dataclass
from types import FrameType
from typing import NoReturn

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from .app.triggers import TRIGGER_KINDS
from .asgi import WasikvApp
from .errors import ConfigError
from .limits import DEFAULT_HEADER_TIMEOUT, DEFAULT_KEEP_ALIVE_TIMEOUT, DEFAULT_MAX_CONNECTIONS
from .processes import listening_socket, process_index
from .triggers._output import GUEST_LOGGER
from .triggers.watch.runner import DELIVERY_LOGGER

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

    def __post_init__(self) -> None:
        if self.header_timeout <= 0 or self.keep_alive_timeout <= 0 or self.max_connections < 1:
            raise ConfigError(f"invalid server limits: {self}")


class _GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's line and headers."""

    header_timeout = DEFAULT_HEADER_TIMEOUT

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:
            self._arm_header_timer()  # a request has begun (or is awaited): its headers are due
        else:
            self._cancel_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

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
            log.warning(
                "closed a connection from %s: no request headers within %g s",
                self.client,
                self.header_timeout,
            )
            self.transport.close()


#: The loggers `serve` prints, timestamped, to stderr: requests, what guests
#: print, and deliveries to watchers.
SERVER_LOGGERS = ("wasikv.access", GUEST_LOGGER, DELIVERY_LOGGER)


def _server_log() -> None:
    """Send the `SERVER_LOGGERS` (at INFO) to one timestamped stderr handler, unless they have handlers."""
    handler: logging.Handler | None = None
    for name in SERVER_LOGGERS:
        logger = logging.getLogger(name)
        if logger.handlers:
            continue
        if handler is None:
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def parse_listen(listen: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 as `[::1]:3000`) → (host, port)."""
    address, sep, port = listen.rpartition(":")
    if not sep or not address or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--listen {listen!r}: expected HOST:PORT, e.g. 127.0.0.1:3000")
    return address.strip("[]"), int(port)


#: Seconds in-flight requests get to finish after SIGINT/SIGTERM before their
#: guests are stopped; the server is gone a couple of seconds later.
SHUTDOWN_GRACE = 5.0


def _protocol(limits: ServerLimits) -> type[H11Protocol]:
    return type("GuardedH11Protocol", (_GuardedH11Protocol,), {"header_timeout": limits.header_timeout})


class _Server(uvicorn.Server):
    """uvicorn's server, which also stops the app's guests when told to exit."""

    def __init__(self, config: uvicorn.Config, app: WasikvApp) -> None:
        super().__init__(config)
        self.wasikv_app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A first signal lets in-flight requests finish for a while; a second
        # ends the process at once.
        if self.should_exit:
            force_exit(sig)
        self.wasikv_app.interrupt(SHUTDOWN_GRACE)
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
) -> None:
    """Serve `app` until SIGINT or SIGTERM (Ctrl-C), then stop within `SHUTDOWN_GRACE` + 2 s.

    As a child of `up --processes` (see `wasikv.processes`), it listens on a
    socket of its own on the same port and prints nothing at start-up; the
    supervisor serves the metrics. Otherwise `metrics_listen` (HOST:PORT)
    serves `app.metrics` there.
    """
    host, port = parse_listen(listen)
    limits = limits or ServerLimits()
    child = process_index() is not None
    if metrics_listen is not None and app.metrics is not None and not child:
        app.metrics.serve(*parse_listen(metrics_listen))
    _server_log()
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        access_log=False,
        lifespan="on",
        log_level="warning",
        timeout_graceful_shutdown=int(SHUTDOWN_GRACE) + 2,
        http=_protocol(limits),
        timeout_keep_alive=int(limits.keep_alive_timeout),
        limit_concurrency=limits.max_connections,
    )
    server = _Server(config, app)
    # Bound here, before "Serving" is printed: a port in use is one clear
    # error, not uvicorn's after the announcement.
    try:
        sockets = [listening_socket(host, port, shared=child)]
    except BaseException:
        app.close()
        raise
    if not child:
        announce(app, host, port)
    # uvicorn shuts down gracefully, then re-raises the signal it caught with
    # the handler it found: SIGINT is a KeyboardInterrupt, and SIGTERM a clean
    # exit rather than death by signal (exit status 0, as after Ctrl-C).
    previous = signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        server.run(sockets=sockets)
    except (KeyboardInterrupt, _Terminated):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not child:
        print("Stopped", flush=True)


class _Terminated(Exception):
    """SIGTERM, re-raised by uvicorn once it has shut down."""


def _exit_cleanly(_signum: int, _frame: FrameType | None) -> None:
    raise _Terminated


def announce(app: WasikvApp, host: str, port: int, processes: int = 1) -> None:
    """Print where the app is served and its triggers."""
    suffix = f" ({processes} processes)" if processes > 1 else ""
    print(f"Serving http://{host}:{port}{suffix}", flush=True)
    for kind in TRIGGER_KINDS:
        for trigger in app.loaded.manifest.of_kind(kind):
            print(f"  {kind.describe(trigger)}", flush=True)
