"""`wasikv up`: serving an app's HTTP triggers with uvicorn."""

from __future__ import annotations

import logging
from types import FrameType

import uvicorn

from .asgi import WasikvApp
from .errors import ConfigError


def parse_listen(listen: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 as `[::1]:3000`) → (host, port)."""
    address, sep, port = listen.rpartition(":")
    if not sep or not address or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--listen {listen!r}: expected HOST:PORT, e.g. 127.0.0.1:3000")
    return address.strip("[]"), int(port)


#: Seconds in-flight requests get to finish after SIGINT/SIGTERM before their
#: guests are stopped; the server is gone a couple of seconds later.
SHUTDOWN_GRACE = 5.0


class _Server(uvicorn.Server):
    """uvicorn's server, which also stops the app's guests when told to exit."""

    def __init__(self, config: uvicorn.Config, app: WasikvApp) -> None:
        super().__init__(config)
        self.wasikv_app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A first signal lets in-flight requests finish for a while; a second
        # stops every guest at once (uvicorn then stops waiting too).
        self.wasikv_app.interrupt(0.0 if self.should_exit else SHUTDOWN_GRACE)
        super().handle_exit(sig, frame)


def serve(app: WasikvApp, listen: str = "127.0.0.1:3000") -> None:
    """Serve `app` until SIGINT or SIGTERM (Ctrl-C), then stop within `SHUTDOWN_GRACE` + 2 s."""
    host, port = parse_listen(listen)
    access = logging.getLogger("wasikv.access")
    if not access.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        access.addHandler(handler)
        access.setLevel(logging.INFO)
        access.propagate = False
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        access_log=False,
        lifespan="on",
        log_level="warning",
        timeout_graceful_shutdown=int(SHUTDOWN_GRACE) + 2,
    )
    server = _Server(config, app)
    print(f"Serving http://{host}:{port}", flush=True)
    for trigger in app.loaded.manifest.http_triggers:
        print(f"  {trigger.route}  ->  {trigger.component}", flush=True)
    for watch in app.loaded.manifest.kv_triggers:
        print(f"  key-value {watch.store}:{watch.prefix}*  ->  {watch.component}", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        # uvicorn shuts down gracefully, then re-raises the captured SIGINT.
        pass
    print("Stopped", flush=True)
