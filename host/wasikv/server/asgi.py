"""Serving HTTP-trigger components through ASGI.

`create_app("wasikv.toml")` returns an ASGI application, so a Python service
can mount Wasm components next to its own routes (Starlette's `Mount`,
FastAPI's `app.mount`), and `wasikv up` serves the same object with uvicorn.

Each request runs in a fresh component instance on a worker thread; wasm runs
without the GIL, so requests are served in parallel. Every request has a
deadline (`request_timeout`, 30 s by default): a guest still running then is
stopped and the request answered 504, and its worker is free again. Requests
that find every worker busy wait in a bounded queue; past `queue_limit` they
are answered 503 with `Retry-After` at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from ..app.loader import LoadedApp, load_app, with_instance_reuse
from ..app.variable_sources import VariableSources
from ..errors import ComponentError, GuestInterrupted, GuestTimeout
from ..host import Host
from ..instance_reuse import InstanceReuse
from ..limits import DEFAULT_BODY_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, Limits
from ..metrics import Metrics
from ..runtime.compile_cache import CompileHook
from ..runtime.deadlines import Shutdown
from ..runtime.instance_pool import InstancePool
from ..runtime.workers import Overloaded, WorkerPool
from ..triggers.http_component import HttpComponent, HttpRequest, HttpResponse
from ..triggers.registry import HTTP, KEY_VALUE, PreparedTriggers
from ..triggers.runtime import TriggerService
from ..triggers.wasi_http_component import RequestHead, WasiHttpComponent
from ..triggers.watch import WatchTriggers
from .answers import overloaded, plain
from .logs import log_to_stderr
from .streaming import AbortedResponse, StreamingExchange

#: Request handling creates an instance per request: pool them by default.
DEFAULT_POOL = InstancePool()
# How long past its deadline a request waits for a guest blocked in a host
# call (which epochs cannot stop) before it is answered 504 anyway, how long
# past the shutdown cut-off before it is answered 503, and how often that is
# checked.
_STUCK_GRACE = 1.0
_STOP_GRACE = 0.5
_STUCK_CHECK = 0.25
# Seconds `close` waits for workers still running (not blocked ones).
_CLOSE_WAIT = 2.0
# Seconds between two updates of the watcher-lag metric.
_LAG_REFRESH = 2.0

log = logging.getLogger("wasikv")
access_log = logging.getLogger("wasikv.access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class WasikvApp:
    """An ASGI application routing requests to HTTP-trigger components.

    `triggers` holds every kind's prepared triggers (see
    `wasikv.triggers.registry`); the HTTP ones are routed here, the others
    (key-value watchers) run beside the requests from `start` to `close`.
    """

    def __init__(
        self,
        loaded: LoadedApp,
        *,
        host: Host | None = None,
        workers: int | None = None,
        limits: Limits | None = None,
        cache_dir: str | Path | None = None,
        instance_pool: InstancePool | None = None,
        request_timeout: float | None = DEFAULT_REQUEST_TIMEOUT,
        queue_limit: int | None = None,
        body_timeout: float | None = DEFAULT_BODY_TIMEOUT,
        metrics: Metrics | None = None,
        singletons: bool = True,
        on_compile: CompileHook | None = None,
        max_blocked: int | None = None,
        instance_reuse: InstanceReuse | None = None,
    ) -> None:
        for name, value in (("request_timeout", request_timeout), ("body_timeout", body_timeout)):
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive (or None for no limit)")
        #: Seconds a client has to send a request's whole body (408 after).
        self.body_timeout = body_timeout
        if instance_reuse is not None:
            loaded = with_instance_reuse(loaded, instance_reuse)
        self.loaded = loaded
        #: Where requests are counted and timed (None: nowhere).
        self.metrics = metrics
        self.host = host or Host(
            loaded.stores,
            limits=limits,
            cache_dir=cache_dir,
            instance_pool=instance_pool,
            metrics=metrics,
            on_compile=on_compile,
        )
        self._owns_host = host is None
        self.request_timeout = request_timeout
        # Prepared now so that a component that cannot serve its trigger stops the app before it serves.
        self.triggers = PreparedTriggers(loaded, self.host, timeout=request_timeout)
        #: Whether this process runs the app's singletons (watchers); under
        #: `up --processes` every child does, taking turns through leases.
        self.singletons = singletons
        routes = self.triggers[HTTP]
        self.router = routes.router
        self.components = routes.components
        count = workers or default_workers()
        self._pool = WorkerPool(
            count,
            default_queue_limit(count) if queue_limit is None else queue_limit,
            max_written_off=max_blocked,
            name="wasikv-http",
            on_written_off=None if metrics is None else metrics.blocked_workers.set,
        )
        # The cut-off of a shutdown (see `interrupt`): requests still waiting
        # then are answered 503, and so are guests blocked in a host call.
        self._stop = Shutdown()
        # One replacement at a time: two versions of a component never race to be the last in place.
        self._replacing = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.start()
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
        component = None if match is None else self.components[match.component]
        if match is not None and isinstance(component, WasiHttpComponent) and not self._pool.full:
            uri = path + ("?" + query if query else "")
            head = RequestHead(
                method,
                uri,
                [(k.decode("latin-1").lower(), v) for k, v in scope["headers"]],
                scheme=scope.get("scheme", "http"),
                authority=_authority(scope),
            )
            exchange = StreamingExchange(self, component, match.component, match.route, head)
            try:
                status = await exchange.run(receive, send)
            except AbortedResponse as exc:
                # Returning with the response incomplete makes the server
                # close the connection: the client sees the body cut short.
                log.warning("%s; the connection is closed", exc)
                status = exchange.status or 500
            ended = time.perf_counter()
            # What the guest printed comes before the request's line, in the order it happened.
            await exchange.settled()
            self._log_request(method, path, match.route, status, started, ended)
            return
        if match is None or component is None:
            response = plain(404, "Not Found")
        elif self._pool.full or isinstance(component, WasiHttpComponent):
            # Refused before the body is read: a full queue holds no bodies. (A
            # wasi:http component comes here only if the queue was full above.)
            response = overloaded()
        else:
            try:
                body = await _read_body(receive, self.host.limits.max_value_bytes, self.body_timeout)
            except _BodyTimeout:
                log.warning("%s %s: no whole body within %g s; answered 408", method, path, self.body_timeout)
                response = plain(408, "Request Timeout", [("connection", "close")])
            else:
                if body is None:
                    response = plain(413, "Payload Too Large")
                else:
                    uri = path + ("?" + query if query else "")
                    headers = [
                        (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]
                    ]
                    headers += _route_headers(scope, match.route, match.path_info, uri)
                    request = HttpRequest(method, uri, headers, body)
                    response = await self._serve(match.component, component, match.route, request)
        # Guest responses come checked, without content-length or hop-by-hop
        # headers: the length is always the host's own.
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
        headers.append((b"content-length", str(len(response.body)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})
        self._log_request(method, path, None if match is None else match.route, response.status, started)

    def _log_request(
        self,
        method: str,
        path: str,
        route: str | None,
        status: int,
        started: float,
        ended: float | None = None,
    ) -> None:
        elapsed = (time.perf_counter() if ended is None else ended) - started
        access_log.info("%s %s %d %.1fms", method, path, status, elapsed * 1000)
        if self.metrics is not None:
            self.metrics.observe_request(route, status, elapsed)

    async def _serve(
        self, name: str, component: HttpComponent, route: str, request: HttpRequest
    ) -> HttpResponse:
        # `component` is the version looked up when the request arrived, even if
        # a new one was swapped in since (`replace_component`).
        timeout = self.request_timeout
        arrived = time.monotonic()
        started: list[float] = []
        loop = asyncio.get_running_loop()
        # Resolved as soon as the guest has answered, while its worker still
        # tears the instance down (about a third of a request's CPU); or with
        # the work's outcome if it ends without an answer. One wake-up of the
        # event loop per request: the end of the work, once answered, is
        # seen from the worker's thread.
        answered: asyncio.Future[HttpResponse] = loop.create_future()
        sent: list[bool] = []

        def on_response(response: HttpResponse) -> None:
            sent.append(True)
            loop.call_soon_threadsafe(_resolve, answered, response)

        def handle() -> HttpResponse:
            started.append(time.monotonic())
            return component.handle(request, on_response=on_response)

        def finished(work: Future[HttpResponse]) -> None:
            if not sent:
                loop.call_soon_threadsafe(_settle, answered, work)
            elif not work.cancelled() and (exc := work.exception()) is not None:
                log.warning("component %s on %s: after its response: %s", name, route, exc)

        try:
            future = self._pool.submit(handle)
            if self.metrics is not None:
                self.metrics.waiting.set(self._pool.waiting)
        except Overloaded as exc:
            log.warning("component %s on %s %s: 503, %s", name, request.method, route, exc)
            return overloaded()
        future.add_done_callback(finished)
        try:
            while True:
                done, _ = await asyncio.wait({answered}, timeout=_STUCK_CHECK)
                if done:
                    return answered.result()
                if verdict := self._overdue(future, arrived, started):
                    return self._give_up(future, name, route, request, verdict)
        except GuestTimeout:
            return _gateway_timeout(
                name, route, request, f"ran past the {timeout:g} s request timeout; answered 504"
            )
        except GuestInterrupted:
            return plain(503, "Service Unavailable")
        except asyncio.CancelledError:
            if not future.cancelled():
                raise  # this request was cancelled, not its work
            return plain(503, "Service Unavailable")
        except Exception as exc:
            # A trap or a bad response is the component's failure, not the
            # server's: answer 500, log it, keep serving.
            log.error("component %s failed on %s %s: %s", name, request.method, request.uri, exc)
            return plain(500, "Internal Server Error")

    def _overdue(self, future: Future[Any], arrived: float, started: list[float]) -> str | None:
        """Why a request still unanswered must be answered now, if it must: its deadline or shutdown."""
        now = time.monotonic()
        timeout = self.request_timeout
        stopping = now > self._stop.at
        if not started:
            # Still queued: a worker never became free in time (or the server is stopping).
            # A worker is freed (or replaced) at most `_STUCK_GRACE` after its
            # guest's deadline: waiting longer than that, no worker is coming soon.
            late = timeout is not None and now > arrived + timeout + _STUCK_GRACE
            if (stopping or late) and self._pool.withdraw(future):
                return "stopping" if stopping else "queued"
            return None
        # Running, and past what epochs would have stopped: blocked in a host call.
        if timeout is not None and now > started[0] + timeout + _STUCK_GRACE:
            return "blocked"
        if now > self._stop.at + _STOP_GRACE:
            return "stopping"
        return None

    def _give_up(
        self, future: Future[Any], name: str, route: str, request: HttpRequest, verdict: str
    ) -> HttpResponse:
        """Answer a request whose guest cannot answer in time: 503 (queued, stopping) or 504 (blocked)."""
        timeout = self.request_timeout
        if verdict == "queued":
            log.warning(
                "component %s on %s %s: waited %g s for a worker; answered 503",
                name,
                request.method,
                route,
                (timeout or 0) + _STUCK_GRACE,
            )
            return overloaded()
        if verdict == "stopping" and not future.running():
            return plain(503, "Service Unavailable")
        # The guest is blocked in a host call that epochs cannot stop: answer
        # now, and let a fresh worker take its place.
        if self._pool.write_off(future):
            if self.metrics is not None:
                self.metrics.written_off.inc()
            fate = "its worker is written off and replaced"
        else:
            fate = (
                f"its worker is not replaced: {self._pool.written_off} workers are already blocked"
                " (the most replaced at once)"
            )
        if verdict == "stopping":
            log.warning(
                "component %s on %s %s is blocked in a host call at shutdown; answered 503, %s",
                name,
                request.method,
                route,
                fate,
            )
            return plain(503, "Service Unavailable")
        assert timeout is not None
        why = f"is blocked past its {timeout:g} s request timeout (in a host call); answered 504, {fate}"
        return _gateway_timeout(name, route, request, why)

    def replace_component(self, name: str, source: str | Path | bytes) -> None:
        """Run component `name` from `source` (a `.wasm` path or its bytes) from now on, while serving.

        The new version is compiled (or taken from the compile cache) and
        checked against every trigger that runs `name`, then put in place in
        all of them at once: requests and watcher batches that begin after
        this returns run on it; those in progress finish on the old version.
        It keeps the old version's variables, grants and deadlines. Raises
        `ComponentError`, naming the component, if there is no component
        `name`, the app is closing, or `source` cannot be loaded or cannot
        serve those triggers: then the old version goes on serving.
        """
        if name not in self.loaded.manifest.components:
            defined = ", ".join(repr(n) for n in self.loaded.manifest.components) or "none"
            raise ComponentError(f"there is no component {name!r} in this app; defined: {defined}")
        with self._replacing:
            if self._stop.started:
                raise ComponentError(f"component {name!r} was not replaced: the app is closing")
            try:
                component = self.host.load(source)
            except ComponentError as exc:
                raise ComponentError(f"component {name!r}: {exc}") from None
            swaps = [swap for service in self.triggers.values() if (swap := service.swap(name, component))]
            for swap in swaps:
                swap()

    @property
    def watchers(self) -> WatchTriggers:
        """The runners of the app's key-value triggers."""
        return self.triggers[KEY_VALUE]

    def start(self) -> None:
        """Start every kind's triggers (lifespan start-up does it); a failure stops those started.

        Without `singletons`, triggers that must run once per app (watchers) stay stopped.
        The app's lines (requests, guest output, deliveries) go to stderr
        unless logging is configured for them (see `wasikv.server.logs`).
        """
        log_to_stderr(unless_configured=True)
        started: list[TriggerService] = []
        if self.metrics is not None and self.singletons:
            self.metrics.watch_lag(self.watchers.lags)
            self.metrics.watch_counts(self.watchers.counts)
            self.metrics.refresh_every(_LAG_REFRESH)
        try:
            for entry, service in self.triggers.items():
                if entry.kind.singleton and not self.singletons:
                    continue
                service.start()
                started.append(service)
        except BaseException:
            for service in started:
                service.stop()
            raise

    def interrupt(self, grace: float = 0.0) -> None:
        """Stop this app's guests `grace` seconds from now (for shutdown).

        Requests then still waiting for a worker, or whose guest is blocked
        in a host call, are answered 503 at once.
        """
        self._stop.begin(grace)
        if self._owns_host:
            self.host.interrupt(grace)

    def drain(self, grace: float) -> None:
        """Begin a graceful stop: what is in progress gets `grace` seconds to finish, nothing new starts.

        Requests in progress may finish until then (see `interrupt`); each
        watcher finishes the batch it is delivering, if it can until then,
        and starts no other. `close` then waits for them.
        """
        self.interrupt(grace)
        if self.singletons:
            self.watchers.drain(time.monotonic() + grace)

    @property
    def blocked_workers(self) -> int:
        """Workers written off now: their guests are blocked in host calls past their deadlines."""
        return self._pool.written_off

    def close(self) -> None:
        """Stop triggers (watchers) and worker threads, and close the stores (if this app opened them).

        Mounted inside another ASGI app (which does not forward lifespan
        events), call `start()` (or `watchers.start()`) yourself at startup
        and `close()` at shutdown.
        """
        if not self._stop.started:
            self.interrupt(grace=0.0)
        # After `drain`, the watchers' batches in progress may finish before
        # every guest is stopped.
        for service in self.triggers.values():
            service.stop()
        self.interrupt(grace=0.0)
        # Requests were answered by now (or given up, at the cut-off): what
        # still runs is tearing instances down.
        self._pool.shutdown(timeout=_CLOSE_WAIT)
        if self._owns_host:
            self.host.close()


def _resolve(future: asyncio.Future[HttpResponse], response: HttpResponse) -> None:
    if not future.done():
        future.set_result(response)


def _settle(future: asyncio.Future[HttpResponse], work: Future[HttpResponse]) -> None:
    """Give `future` the outcome of `work` (done), which ended without answering."""
    if future.done():
        return
    if work.cancelled():
        future.cancel()
    elif (exc := work.exception()) is not None:
        future.set_exception(exc)
        # Retrieved here: a request given up on (`_give_up`) no longer awaits
        # it, and a written-off guest that fails at last is no "Future
        # exception was never retrieved" at shutdown.
        future.exception()
    else:
        future.set_result(work.result())


def default_workers() -> int:
    """Request threads by default: one per CPU, at least two.

    Guests run without the GIL, so more threads than cores only add hand-offs
    (measured on 2 cores: 8 threads had a p99 of 138 ms, 2 threads 48 ms); a
    second thread keeps a core busy while the other waits on a store.
    """
    return max(2, os.cpu_count() or 1)


def default_queue_limit(workers: int) -> int:
    """Requests that may wait for a worker by default: 64, or 4 per worker if more.

    Not tied to the worker count alone: with the default of two workers a
    queue of 8 turned 16 keep-alive clients into 503s. 64 requests of a few
    milliseconds each wait a fraction of a second.
    """
    return max(64, 4 * workers)


def create_app(
    manifest: str | Path = "wasikv.toml",
    *,
    runtime_config_file: str | Path | None = None,
    key_values: Iterable[tuple[str, str]] = (),
    variables: Mapping[str, str] | None = None,
    env_file: str | Path | None = None,
    workers: int | None = None,
    limits: Limits | None = None,
    cache_dir: str | Path | None = None,
    instance_pool: InstancePool | None = DEFAULT_POOL,
    request_timeout: float | None = DEFAULT_REQUEST_TIMEOUT,
    queue_limit: int | None = None,
    body_timeout: float | None = DEFAULT_BODY_TIMEOUT,
    metrics: Metrics | None = None,
    singletons: bool = True,
    on_compile: CompileHook | None = None,
    max_blocked: int | None = None,
    instance_reuse: InstanceReuse | None = None,
) -> WasikvApp:
    """An ASGI app serving the HTTP triggers of the manifest at `manifest`.

    `key_values` seeds the `default` store (like `spin up --key-value`).
    `variables` give application variables their values (like `spin up
    --variable`), before the environment (`WASIKV_VARIABLE_<NAME>`,
    `SPIN_VARIABLE_<NAME>`), the dotenv file `env_file` (default: `.env` next
    to the manifest, if any) and the manifest's defaults.
    Instances come from wasmtime's pooling allocator unless `instance_pool`
    is None (see `wasikv.InstancePool`). A request whose guest runs longer
    than `request_timeout` seconds (None: no limit) is answered 504; a
    watcher call that long fails. Requests waiting for one of the `workers`
    (default one per CPU, at least 2) are capped at `queue_limit` (default
    64, or 4 x workers if more); more are answered 503 with `Retry-After`,
    and so is a request still waiting a second after `request_timeout`. A guest
    blocked in a host call (a sleep, a silent upstream: epochs cannot stop
    it) is answered 504 a second after its deadline and its worker replaced,
    up to `max_blocked` stuck at once (default 8 x workers). A client that has not
    sent a request's whole body within `body_timeout` seconds gets 408.
    `metrics` (a `wasikv.Metrics`) counts requests, instances and
    store calls; without `singletons` the watchers do not run here (other
    processes of the same app run them, taking turns through leases). `on_compile` wraps each component
    compile the compile cache could not spare (see `wasikv.Host`).
    `instance_reuse` (a `wasikv.InstanceReuse`) lets the instances of every
    HTTP component whose manifest entry does not set `instance_reuse` serve
    several requests each, one at a time (default: a fresh instance per
    request; module globals then persist between requests).
    Raises `wasikv.ConfigError` for any manifest or runtime-config mistake
    or a required variable without a value, and `wasikv.ComponentError` for a component
    that cannot serve its trigger (missing export, mistyped imports or
    exports), before anything starts.
    """
    loaded = load_app(
        Path(manifest),
        runtime_config_file=runtime_config_file,
        variables=VariableSources(flags=dict(variables or {}), env_file=env_file),
    )
    app = WasikvApp(
        loaded,
        workers=workers,
        limits=limits,
        cache_dir=cache_dir,
        instance_pool=instance_pool,
        request_timeout=request_timeout,
        queue_limit=queue_limit,
        body_timeout=body_timeout,
        metrics=metrics,
        singletons=singletons,
        on_compile=on_compile,
        max_blocked=max_blocked,
        instance_reuse=instance_reuse,
    )
    seeds = list(key_values)
    if seeds:
        bucket = app.host.bucket("default")
        for key, value in seeds:
            bucket.set(key, value.encode("utf-8"))
    return app


class _BodyTimeout(Exception):
    """The client did not send the whole body in time."""


async def _read_body(receive: Receive, limit: int, timeout: float | None) -> bytes | None:
    """The request body; None if it is over `limit`; `_BodyTimeout` if not all there within `timeout` s."""
    chunks: list[bytes] = []
    size = 0
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            message = await asyncio.wait_for(
                receive(), None if deadline is None else deadline - time.monotonic()
            )
        except TimeoutError:
            raise _BodyTimeout from None
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


def _gateway_timeout(name: str, route: str, request: HttpRequest, why: str) -> HttpResponse:
    log.error("component %s on route %s (%s %s) %s", name, route, request.method, request.uri, why)
    return plain(504, "Gateway Timeout")


def _authority(scope: Scope) -> str | None:
    """The request's authority: its Host header, else the server's address."""
    for name, value in scope["headers"]:
        if name.lower() == b"host":
            return str(value.decode("latin-1"))
    server = scope.get("server")
    if not server:
        return None
    host, port = server
    return host if port is None else f"{host}:{port}"


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
