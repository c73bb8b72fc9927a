"""The listener of `/livez`, `/readyz` and (with a registry) Prometheus metrics, on a thread of its own.

It never shares the app's port: every path there belongs to the manifest's
routes (a route of `/...` claims them all), so a probe path on it could
shadow an app's route, or be shadowed by one. `wasikv up --metrics` serves
the probes beside `/metrics`, `--health` on a port of their own.

Each connection is served on a thread (a slow client holds only its own,
for at most `CLIENT_TIMEOUT` seconds), so a probe is answered however busy
the event loop is: that is what lets liveness tell a stuck loop.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from ..errors import ConfigError
from .health import HealthSource

#: The probe paths.
LIVENESS_PATH = "/livez"
READINESS_PATH = "/readyz"
#: Seconds a connection to the listener may stay silent before it is closed.
CLIENT_TIMEOUT = 10.0

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _ThreadingServer6(_ThreadingServer):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    timeout = CLIENT_TIMEOUT

    def log_message(self, format: str, *args: Any) -> None:
        pass  # probes come every few seconds: not worth a log line each


def _error(message: str) -> bytes:
    return json.dumps({"error": message}).encode() + b"\n"


def _answer(
    start_response: StartResponse,
    status: str,
    body: bytes,
    head: bool,
    extra: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    headers = [
        ("Content-Type", "application/json"),
        ("Cache-Control", "no-store"),
        ("Content-Length", str(len(body))),
    ]
    start_response(status, headers + (extra or []))
    return [b""] if head else [body]


def health_app(source: HealthSource, metrics: WsgiApp | None = None) -> WsgiApp:
    """A WSGI app answering the probes from `source`, and every other path with `metrics` (or 404)."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path in (LIVENESS_PATH, READINESS_PATH):
            if method not in ("GET", "HEAD"):
                body = _error(f"{method} not allowed: use GET or HEAD")
                allow = [("Allow", "GET, HEAD")]
                return _answer(start_response, "405 Method Not Allowed", body, False, allow)
            if path == LIVENESS_PATH:
                verdict = source.liveness()
                body = verdict.body("live", "not live")
            else:
                verdict = source.readiness()
                body = verdict.body("ready", "not ready")
            status = "200 OK" if verdict.ok else "503 Service Unavailable"
            return _answer(start_response, status, body, method == "HEAD")
        if metrics is not None:
            return metrics(environ, start_response)
        body = _error(f"no such path; try {LIVENESS_PATH} or {READINESS_PATH}")
        return _answer(start_response, "404 Not Found", body, method == "HEAD")

    return app


def bind(host: str, port: int, option: str) -> WSGIServer:
    """A listener on (host, port), not serving yet (see `start`); `ConfigError` naming `option` if it cannot
    listen."""
    server_class = _ThreadingServer6 if ":" in host else _ThreadingServer
    try:
        return server_class((host, port), _QuietHandler)
    except OSError as exc:
        raise ConfigError(f"{option} {host}:{port}: cannot listen: {exc.strerror or exc}") from None


def start(server: WSGIServer, app: WsgiApp) -> WSGIServer:
    """Serve `app` on the listener `server` (from `bind`) from a daemon thread."""
    server.set_app(app)
    threading.Thread(target=server.serve_forever, name="wasikv-health", daemon=True).start()
    return server


def listen(host: str, port: int, app: WsgiApp, option: str) -> WSGIServer:
    """Serve `app` on (host, port) from a daemon thread; `ConfigError` naming `option` if it cannot listen."""
    return start(bind(host, port, option), app)


def metrics_app(registry: Any) -> WsgiApp:
    """prometheus-client's WSGI exposition of `registry` (content negotiation, compression)."""
    from prometheus_client import make_wsgi_app

    app: WsgiApp = make_wsgi_app(registry)
    return app


def register_child(directory: str, index: int, port: int) -> None:
    """Tell the supervisor (through `directory`) on which loopback port child `index` answers its probes."""
    path = os.path.join(directory, f"{index}.json")
    temporary = f"{path}.{os.getpid()}"
    with open(temporary, "w") as file:
        json.dump({"pid": os.getpid(), "port": port}, file)
    os.replace(temporary, path)  # never half-written for the supervisor


__all__ = [
    "CLIENT_TIMEOUT",
    "LIVENESS_PATH",
    "READINESS_PATH",
    "bind",
    "health_app",
    "listen",
    "metrics_app",
    "register_child",
    "start",
]
