"""The HTTP trigger: calling a component's `wasikv:app/http` or `incoming-handler` export.

Both exports take the same request record and return the same response
record: `wasikv:app/http` (function `handle-request`, the `Http` class of
`wasikv_sdk.http`) and `wasikv:app/incoming-handler` (function `handle`,
the `IncomingHandler` class of `wasikv_sdk.spin.http`, for Spin-style apps).
Every request gets a fresh instance, so no state leaks between requests,
unless the component opts into reuse (`wasikv.instance_reuse`).
The request and response records are converted with wasikv's own codec, so
bodies cross the boundary in bulk rather than one byte at a time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from functools import partial

from wasmtime import Store
from wasmtime.component import Component, Func, Instance

from ..capability import InstanceSpec
from ..errors import ComponentError
from ..host import Host
from ..instance_reuse import InstanceReuse
from ..limits import MAX_RESPONSE_HEADER_BYTES, MAX_RESPONSE_HEADERS
from ..runtime._capi import context_address
from ..runtime.codec import reader, writer
from ..runtime.wit_types import STRING, U8, U16, FuncSig, ListOf, RecordOf, TupleOf
from ._exports import TriggerExport, call_export, export_func, select_export
from ._output import GuestOutput
from .reused_instances import InstanceKeeper, instance_for

HTTP_INTERFACE = "wasikv:app/http@0.1.0"
HTTP_WORLD = "wasikv:app/http-trigger"
SPIN_HTTP_INTERFACE = "wasikv:app/incoming-handler@0.1.0"
SPIN_HTTP_WORLD = "wasikv:app/spin-http"

_HEADERS = ListOf(TupleOf((STRING, STRING)))
REQUEST = RecordOf(
    (("method", STRING), ("uri", STRING), ("headers", _HEADERS), ("body", ListOf(U8))), name="request"
)
RESPONSE = RecordOf((("status", U16), ("headers", _HEADERS), ("body", ListOf(U8))), name="response")
#: The function the trigger calls, as `wit/http.wit` declares it (in both interfaces).
HANDLE_REQUEST = FuncSig((("request", REQUEST),), RESPONSE)

#: The exports an HTTP component may have, wasikv's own first.
HTTP_EXPORTS = (
    TriggerExport(HTTP_WORLD, (HTTP_INTERFACE,), {"handle-request": HANDLE_REQUEST}),
    TriggerExport(SPIN_HTTP_WORLD, (SPIN_HTTP_INTERFACE,), {"handle": HANDLE_REQUEST}),
)

_write_request = writer(REQUEST)
_read_response = reader(RESPONSE)


@dataclass(frozen=True)
class HttpRequest:
    """A request as the guest sees it."""

    method: str
    uri: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


@dataclass(frozen=True)
class HttpResponse:
    """A response as the guest returned it."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


class BadResponse(ComponentError):
    """The component returned a response that is not valid HTTP."""


class HttpComponent(InstanceKeeper):
    """A component that serves HTTP requests, one fresh instance per request unless `reuse` says.

    Each instance is given `spec` (its environment, variables, grants,
    deadline and outbound HTTP; see `InstanceSpec`), with argv `[name]` and
    its output captured and logged. With `reuse`, instances are kept
    across requests as `InstanceReuse` says; one answering 500 or more is
    retired, and `close` frees those kept.
    """

    def __init__(
        self,
        host: Host,
        component: Component,
        *,
        name: str = "app",
        spec: InstanceSpec | None = None,
        reuse: InstanceReuse | None = None,
    ) -> None:
        export, interface = select_export(
            host.exports(component), HTTP_EXPORTS, f"component {name!r} ({host.origin(component)})"
        )
        (function,) = export.functions
        self._target = (interface, function, export.world)
        super().__init__(host, component, name=name, spec=spec, reuse=reuse)

    def handle(
        self, request: HttpRequest, on_response: Callable[[HttpResponse], None] | None = None
    ) -> HttpResponse:
        """Serve one request in an instance (fresh, or kept), stopped `spec.timeout` seconds after it starts.

        `on_response` is called with the checked response before a fresh
        instance is torn down, so a server can send it meanwhile. Raises
        `GuestTrap` (`GuestTimeout` past the deadline) or `BadResponse`.
        What the guest prints is logged once it has answered (before
        `on_response`), up to the host's `Limits.max_output_bytes` of each
        stream.
        """
        output = GuestOutput.capture(self.name, self.host.limits.max_output_bytes)
        try:
            with instance_for(self.host, self.component, self.spec, self._reused, output) as (
                store,
                instance,
                use,
            ):
                functions = None if use is None else use.live.functions
                response = _call_handler(store, instance, self._target, request, functions)
                if use is not None and response.status >= 500:
                    use.retire("error-response")
                output.log()
                if on_response is not None:
                    on_response(response)
                return response
        finally:
            output.log()


def _call_handler(
    store: Store,
    instance: Instance,
    target: tuple[str, str, str],
    request: HttpRequest,
    functions: MutableMapping[str, Func] | None = None,
) -> HttpResponse:
    """Call the handler `target` (interface, function, world) with `request`; its checked response.

    `functions` is the kept instance's cache of looked-up functions (see `export_func`).
    """
    func = export_func(store, instance, *target, functions)
    fields = (request.method, request.uri, request.headers, request.body)
    ctx = context_address(store)
    raw = call_export(
        store, func, [lambda addr: _write_request(ctx, addr, fields)], partial(_read_response, ctx)
    )
    assert raw is not None
    return checked_response(HttpResponse(raw["status"], raw["headers"], raw["body"]))


#: Headers that describe the connection or the framing, not the response:
#: wasikv frames every response itself (it knows the body's length), so
#: these are dropped from what a guest returns.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}
)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9110 field-value: visible ASCII, obs-text (0x80-0xFF), spaces and tabs.
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")


def checked_response(response: HttpResponse) -> HttpResponse:
    """The response as wasikv sends it, or `BadResponse` saying what is wrong with it.

    The status must be a final one (200-599); header names RFC 9110 tokens
    and values RFC 9110 field values (no control characters such as NUL,
    CR or LF; nothing outside Latin-1). Hop-by-hop headers and the guest's
    `content-length` are dropped: the server computes the length itself, so
    a wrong one can never truncate a response. Names are lower-cased and
    values trimmed of surrounding whitespace. There may be at most
    `MAX_RESPONSE_HEADERS` headers of `MAX_RESPONSE_HEADER_BYTES` in all
    (names, values and 4 bytes each for ": " and CRLF).
    """
    status = response.status
    if not 200 <= status <= 599:
        raise BadResponse(f"status {status} is not a final HTTP status (200-599)")
    if status in (204, 304) and response.body:
        raise BadResponse(f"status {status} must not carry a body ({len(response.body)} bytes)")
    count = len(response.headers)
    if count > MAX_RESPONSE_HEADERS:
        raise BadResponse(f"{count} response headers are more than the {MAX_RESPONSE_HEADERS} allowed")
    # Characters count as bytes: a value beyond Latin-1 is refused below anyway.
    size = sum(len(name) + len(value) + 4 for name, value in response.headers)
    if size > MAX_RESPONSE_HEADER_BYTES:
        raise BadResponse(
            f"response headers of {size} bytes are more than the {MAX_RESPONSE_HEADER_BYTES} allowed"
        )
    headers = []
    for name, value in response.headers:
        if not _TOKEN.fullmatch(name):
            raise BadResponse(f"response header name {name[:64]!r} is not an RFC 9110 token")
        if not _FIELD_VALUE.fullmatch(value):
            raise BadResponse(
                f"response header {name!r} has a value RFC 9110 does not allow "
                f"(control characters or characters beyond Latin-1): {value[:64]!r}"
            )
        lowered = name.lower()
        if lowered in HOP_BY_HOP or lowered == "content-length":
            continue
        headers.append((lowered, value.strip(" \t")))
    return HttpResponse(status, headers, response.body)
