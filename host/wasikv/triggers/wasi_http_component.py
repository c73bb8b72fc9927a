"""The standard HTTP trigger: calling a component's `wasi:http/incoming-handler.handle`.

Any component built for `wasi:http/proxy` (a Spin app from any SDK, an app
written for `wasmtime serve`, a `wasikv_sdk` app built for `wasikv:app/proxy`
or `wasikv:app/wasi-proxy`) exports `handle(incoming-request,
response-outparam)`. wasikv makes both resources itself (its Python
`wasi:http/types`, see `wasikv.interfaces.wasi`), so request and response
bodies stream: the server feeds the request body into the instance while
the guest reads it, and sends the response head once the guest sets it
and its body as the guest writes it, each through a bounded buffer.
Every request gets a fresh instance, as on the record trigger, unless the
component opts into reuse (`wasikv.instance_reuse`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from wasmtime.component import Component

from ..capability import InstanceSpec
from ..errors import ComponentError
from ..host import Host
from ..instance_reuse import InstanceReuse
from ..interfaces.wasi.http.bodies import IncomingBodySource
from ..interfaces.wasi.http.errors import describe_error_code
from ..interfaces.wasi.http.messages import IncomingRequest, ResponseHead, ResponseOutparam
from ..interfaces.wasi.pipes import DEFAULT_CAPACITY
from ..runtime import _canonical as cv
from ..runtime._capi import context_address
from ..runtime.codec import Case
from ..runtime.wit_types import FuncSig, Own
from ._exports import TriggerExport, call_export, export_func, select_export
from ._output import GuestOutput
from .http_component import BadResponse, HttpRequest, HttpResponse
from .reused_instances import InstanceKeeper, instance_for

WASI_HTTP_WORLD = "wasi:http/proxy"
#: `handle` as every 0.2.x `incoming-handler` declares it.
HANDLE = FuncSig((("request", Own("incoming-request")), ("response-out", Own("response-outparam"))), None)
#: The standard export, in every 0.2 version (0.2.0 named in messages).
WASI_HTTP_EXPORT = TriggerExport(
    WASI_HTTP_WORLD,
    tuple(f"wasi:http/incoming-handler@0.2.{minor}" for minor in range(0, 13)),
    {"handle": HANDLE},
)


@dataclass(frozen=True)
class RequestHead:
    """What the server knows of a request before its body: for `incoming-request`."""

    method: str
    path_with_query: str
    headers: Sequence[tuple[str | bytes, bytes]]
    scheme: str | None = "http"
    authority: str | None = None


class NoResponse(ComponentError):
    """The guest returned from `handle` without setting a response, or set an `error-code`."""


class WasiHttpComponent(InstanceKeeper):
    """A component exporting `wasi:http/incoming-handler`, one fresh instance per request unless `reuse` says.

    With `reuse`, instances are kept across requests as `InstanceReuse`
    says; one that sets no response, an `error-code`, a status of 500 or
    more or cuts its body short is retired, and `close` frees those kept.

    `serve` is the streaming call a server makes; `handle` takes and gives
    whole bodies (for the `Host` API and tests).
    """

    #: The server streams bodies through `serve`.
    streaming = True

    def __init__(
        self,
        host: Host,
        component: Component,
        *,
        name: str = "app",
        spec: InstanceSpec | None = None,
        reuse: InstanceReuse | None = None,
    ) -> None:
        _export, interface = select_export(
            host.exports(component), (WASI_HTTP_EXPORT,), f"component {name!r} ({host.origin(component)})"
        )
        self._interface = interface
        super().__init__(host, component, name=name, spec=spec, reuse=reuse)

    def serve(
        self,
        head: RequestHead,
        *,
        on_body: Callable[[IncomingBodySource], None],
        on_response: Callable[[ResponseHead | Case | None], None],
        body_capacity: int = DEFAULT_CAPACITY,
    ) -> None:
        """Serve one request in an instance (fresh, or kept), on the calling thread.

        `on_body` gets the source to feed the request body into (feed it
        from another thread, then `finish` it) before the guest runs;
        `on_response` gets the response head once the guest sets it (its
        body then streams from `ResponseHead.body`), the guest's
        `error-code`, or None when `handle` returned without either. The
        body may still be read after this returns: the instance is gone,
        its buffered bytes are not. Raises `GuestTrap` (`GuestTimeout` past
        the deadline); the head is then either sent already or never.
        """
        output = GuestOutput.capture(self.name, self.host.limits.max_output_bytes)
        answered = False

        def respond(response: ResponseHead | Case | None) -> None:
            nonlocal answered
            if not answered:
                answered = True
                on_response(response)

        try:
            with instance_for(self.host, self.component, self.spec, self._reused, output) as (
                store,
                instance,
                use,
            ):
                wasi = self.host.wasi(store)
                source = IncomingBodySource(wasi.instance, body_capacity)
                on_body(source)
                request = IncomingRequest(
                    wasi.instance,
                    method=head.method,
                    path_with_query=head.path_with_query,
                    scheme=head.scheme,
                    authority=head.authority,
                    headers=head.headers,
                    body=source,
                )
                outparam = ResponseOutparam(wasi.instance, on_set=respond)
                ctx = context_address(store)
                plan = self.host.wasi_plan(self.component)
                request_type = plan.type_id("wasi:http/types", "incoming-request")
                outparam_type = plan.type_id("wasi:http/types", "response-outparam")
                request_rep, outparam_rep = wasi.table.add(request), wasi.table.add(outparam)
                func = export_func(
                    store,
                    instance,
                    self._interface,
                    "handle",
                    WASI_HTTP_WORLD,
                    None if use is None else use.live.functions,
                )
                returned = False
                try:
                    call_export(
                        store,
                        func,
                        [
                            lambda addr: cv.put_own_resource(ctx, addr, request_rep, request_type),
                            lambda addr: cv.put_own_resource(ctx, addr, outparam_rep, outparam_type),
                        ],
                    )
                    returned = True
                finally:
                    source.close()  # the feeder stops: nobody reads the rest
                    _end_body(outparam.response, returned=returned)
                if use is not None and (why := _failed(outparam.response)) is not None:
                    use.retire(why)
                output.log()
                respond(outparam.response)
        finally:
            output.log()

    def handle(
        self, request: HttpRequest, on_response: Callable[[HttpResponse], None] | None = None
    ) -> HttpResponse:
        """Serve one request with its whole body, and collect the whole response.

        The response body is kept up to the host's `Limits.max_value_bytes`
        (past it, `BadResponse`). Raises `GuestTrap` (`GuestTimeout` past the
        deadline), `NoResponse` when the guest answers no response.
        """
        limit = self.host.limits.max_value_bytes
        heads: list[ResponseHead | Case | None] = []
        chunks: list[bytes] = []
        size = 0

        def feed(source: IncomingBodySource) -> None:
            if request.body:
                source.offer(request.body)
            source.finish()

        def drain() -> None:
            # On the guest's thread, as it writes: the buffer never fills.
            nonlocal size
            sink = heads[0].body  # type: ignore[union-attr]
            while chunk := sink.take_nowait(1 << 16):
                size += len(chunk)
                if size > limit:
                    sink.close()  # the guest's next write fails
                    return
                chunks.append(chunk)

        def respond(answer: ResponseHead | Case | None) -> None:
            heads.append(answer)
            if isinstance(answer, ResponseHead):
                answer.body.on_data = drain
                drain()

        self.serve(
            RequestHead(
                request.method,
                request.uri,
                [(name, value.encode("latin-1")) for name, value in request.headers],
                authority=next((v for n, v in request.headers if n.lower() == "host"), None),
            ),
            on_body=feed,
            on_response=respond,
            body_capacity=max(DEFAULT_CAPACITY, len(request.body)),
        )
        answer = heads[0] if heads else None
        if not isinstance(answer, ResponseHead):
            why = "set no response" if answer is None else f"answered {describe_error_code(answer)}"
            raise NoResponse(f"component {self.name!r} {why}")
        drain()
        if size > limit:
            raise BadResponse(f"response body larger than {limit} bytes")
        if answer.body.outcome != "finished":
            raise BadResponse(f"the response body was not finished ({answer.body.outcome or 'still open'})")
        headers = [(name, value.decode("latin-1")) for name, value in answer.headers]
        response = HttpResponse(answer.status, headers, b"".join(chunks))
        if on_response is not None:
            on_response(response)
        return response


def _failed(response: ResponseHead | Case | None) -> str | None:
    """Why an instance that answered `response` is not kept for reuse: no response, an
    `error-code`, a status of 500 or more, a body cut short; None when it answered well."""
    if not isinstance(response, ResponseHead):
        return "error-response"
    if response.status >= 500 or response.body.outcome == "aborted":
        return "error-response"
    return None


def _end_body(response: ResponseHead | Case | None, *, returned: bool) -> None:
    """End a response body the guest left neither finished nor dropped when `handle` ended.

    After a normal return wasmtime ends such a body as complete (unless its
    Content-Length says bytes are missing); after a trap it was cut short.
    """
    if not isinstance(response, ResponseHead) or response.body.outcome is not None:
        return
    sink = response.body
    complete = returned and (sink.expected is None or sink.written == sink.expected)
    sink.end("finished" if complete else "aborted")


__all__ = ["HANDLE", "WASI_HTTP_EXPORT", "WASI_HTTP_WORLD", "NoResponse", "RequestHead", "WasiHttpComponent"]
