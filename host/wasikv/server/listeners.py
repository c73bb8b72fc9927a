"""The addresses `wasikv up` listens on, bound before anything is built or compiled.

A port in use is then one clear error at once, not after the seconds a
build and the compiles take, and nothing else can take the port meanwhile.
Connections that arrive before the app serves wait in the listen backlog,
and are answered once it does.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from . import health_http
from .processes import listening_socket

__all__ = ["Listeners", "bind_listeners"]


@dataclass
class Listeners:
    """Bound listening sockets, handed to the server that will serve on them.

    `app` is the app's socket (None for the supervisor of `up --processes`:
    each child binds its own); `metrics` and `health` are the listeners of
    `--metrics` and `--health`, not serving yet (`health_http.start`).
    """

    app: socket.socket | None
    metrics: WSGIServer | None = None
    health: WSGIServer | None = None

    def close(self) -> None:
        """Close every socket (when the app will not be served after all)."""
        if self.app is not None:
            self.app.close()
        for server in (self.metrics, self.health):
            if server is not None:
                server.server_close()


def bind_listeners(
    app: tuple[str, int],
    metrics: tuple[str, int] | None = None,
    health: tuple[str, int] | None = None,
    *,
    processes: int = 1,
    child: bool = False,
) -> Listeners:
    """Bind the app's (host, port) and the `--metrics` and `--health` ones; `ConfigError` naming a
    port that cannot be listened on.

    A child of `up --processes` binds the app's port shared (SO_REUSEPORT)
    and no other (its supervisor serves the probes). The supervisor of
    `processes` > 1 only checks that the app's port is free: each child
    binds its own socket there.
    """
    if child:
        return Listeners(listening_socket(*app, shared=True))
    sock = listening_socket(*app, shared=False)
    if processes > 1:
        sock.close()
    bound = Listeners(None if processes > 1 else sock)
    try:
        if metrics is not None:
            bound.metrics = health_http.bind(*metrics, "--metrics")
        if health is not None:
            bound.health = health_http.bind(*health, "--health")
    except BaseException:
        bound.close()
        raise
    return bound
