"""Serving HTTP-trigger components through ASGI.

`create_app("wasikv.toml")` returns an ASGI application, so a Python service
can mount Wasm components next to its own routes (Starlette's `Mount`,
FastAPI's `app.mount`), and `wasikv up` serves the same object with uvicorn.

Each request runs in a fresh component instance on a worker thread; wasm runs
without the GIL, so requests are served in parallel.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .app.loader import LoadedApp, load_app
from .app.routes import Router
from .host import Host
from .instance_pool import InstancePool
from .limits import Limits
from .triggers.http import HttpComponent, HttpRequest, HttpResponse
from .triggers.watch import WatchTriggers

#: Request handling creates an instance per request: pool them by default.
DEFAULT_POOL = InstancePool()

log = logging.getLogger("wasikv")
access_log = logging.getLogger("wasikv.access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class WasikvApp:
    """An ASGI application routing requests to HTTP-trigger components."""

    def __init__(
        self,
        loaded: LoadedApp,
        *,
        host: Host | None = None,
        workers: int | None = None,
        limits: Limits | None = None,
        cache_dir: str | Path | None = None,
        instance_pool: InstancePool | None = None,
    ) -> None:
        self.loaded = loaded
        self.host = host or Host(
            loaded.stores, limits=limits, cache_dir=cache_dir, instance_pool=instance_pool
        )
        self._owns_host = host is None
        self.router = Router(loaded.manifest.http_triggers)
        self.components: dict[str, HttpComponent] = {}
        for trigger in loaded.manifest.http_triggers:
            name = trigger.component
            if name not in self.components:
                spec = loaded.manifest.components[name]
                self.components[name] = HttpComponent(
                    self.host,
                    self.host.load(spec.source),
                    name=name,
                    grants=loaded.grants[name],
                    env=spec.environment,
                )
        # Built now so that a broken watcher stops the app before it serves.
        self.watchers = WatchTriggers.from_app(loaded, self.host)
        self._pool = ThreadPoolExecutor(
            max_workers=workers or min(32, 4 * (os.cpu_count() or 1)), thread_name_prefix="wasikv-http"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.watchers.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        method = scope["method"]
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            # Mounted under a prefix (Starlette's Mount): route on the rest.
            path = path[len(root) :] or "/"
        query = scope.get("query_string", b"").decode("latin-1")
        match = self.router.match(path)
        if match is None:
            response = HttpResponse(404, [("content-type", "text/plain")], b"Not Found\n")
        else:
            body = await _read_body(receive, self.host.limits.max_value_bytes)
            if body is None:
                response = HttpResponse(413, [("content-type", "text/plain")], b"Payload Too Large\n")
            else:
                uri = path + ("?" + query if query else "")
                headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
                headers += _route_headers(scope, match.route, match.path_info, uri)
                request = HttpRequest(method, uri, headers, body)
                response = await self._serve(match.component, request)
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
        if not any(name.lower() == b"content-length" for name, _ in headers):
            # The whole body is known: say so instead of chunked encoding.
            headers.append((b"content-length", str(len(response.body)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})
        elapsed = (time.perf_counter() - started) * 1000
        access_log.info("%s %s %d %.1fms", method, path, response.status, elapsed)

    async def _serve(self, name: str, request: HttpRequest) -> HttpResponse:
        component = self.components[name]
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, component.handle, request)
        except Exception as exc:
            # A trap or a bad response is the component's failure, not the
            # server's: answer 500, log it, keep serving.
            log.error("component %s failed on %s %s: %s", name, request.method, request.uri, exc)
            return HttpResponse(500, [("content-type", "text/plain")], b"Internal Server Error\n")

    def close(self) -> None:
        """Stop watchers and worker threads, and close the stores (if this app opened them).

        Mounted inside another ASGI app (which does not forward lifespan
        events), call `watchers.start()` yourself at startup and `close()` at
        shutdown.
        """
        self.watchers.stop()
        self._pool.shutdown(wait=True)
        if self._owns_host:
            self.host.close()


def create_app(
    manifest: str | Path = "wasikv.toml",
    *,
    runtime_config_file: str | Path | None = None,
    key_values: Iterable[tuple[str, str]] = (),
    workers: int | None = None,
    limits: Limits | None = None,
    cache_dir: str | Path | None = None,
    instance_pool: InstancePool | None = DEFAULT_POOL,
) -> WasikvApp:
    """An ASGI app serving the HTTP triggers of the manifest at `manifest`.

    `key_values` seeds the `default` store (like `spin up --key-value`).
    Instances come from wasmtime's pooling allocator unless `instance_pool`
    is None (see `wasikv.InstancePool`).
    Raises `wasikv.ConfigError` (a `ManifestError`) for any manifest or
    runtime-config mistake, before anything starts.
    """
    loaded = load_app(Path(manifest), runtime_config_file=runtime_config_file)
    app = WasikvApp(loaded, workers=workers, limits=limits, cache_dir=cache_dir, instance_pool=instance_pool)
    seeds = list(key_values)
    if seeds:
        bucket = app.host.bucket("default")
        for key, value in seeds:
            bucket.set(key, value.encode("utf-8"))
    return app


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _route_headers(scope: Scope, route: str, path_info: str, uri: str) -> list[tuple[str, str]]:
    server = scope.get("server") or ("localhost", None)
    host = dict(scope["headers"]).get(b"host", b"").decode("latin-1") or (
        f"{server[0]}:{server[1]}" if server[1] else str(server[0])
    )
    base = route[: -len("/...")] if route.endswith("/...") else route
    return [
        ("spin-full-url", f"{scope.get('scheme', 'http')}://{host}{uri}"),
        ("spin-path-info", path_info),
        ("spin-matched-route", route),
        ("spin-component-route", base),
    ]


__all__ = ["WasikvApp", "create_app"]
