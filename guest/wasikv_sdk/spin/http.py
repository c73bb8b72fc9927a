"""`spin_sdk.http` for wasikv: `Request`, `Response`, `IncomingHandler` and `send`.

A component built for `wasikv:app/spin-http` exports wasikv's
`incoming-handler`, one built for `wasikv:app/proxy` (or `wasi-proxy`) the
standard `wasi:http/incoming-handler`; componentize-py calls the class
`IncomingHandler` in both, and this module's `IncomingHandler` serves
either. Subclass it under that name and override `handle_request`, as in
spin-sdk 3.x::

    from wasikv_sdk.spin import http
    from wasikv_sdk.spin.http import Request, Response

    class IncomingHandler(http.IncomingHandler):
        def handle_request(self, request: Request) -> Response:
            return Response(200, {"content-type": "text/plain"}, b"Hello from Python!")

Built for `wasikv:app/proxy`, the app is a standard `wasi:http` component,
which `spin up` serves as well. Differences from spin_sdk: `uri` is the path
and query (spin_sdk's is the full URL); built for `spin-http`, the request
arrives as wasikv's plain records (its headers carry wasikv's `spin-*` route
headers); `send` raises `wasikv_sdk.outbound.HttpError`.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from .. import http
from ..constants import HOSTCALL_BUDGET_BYTES

# Imported now, not in `send` or `handle`: a component imports nothing after
# it is built (it has no files to import from). Outside one, the bindings are missing.
try:
    from .. import _proxy, outbound
except ImportError:
    outbound = None  # type: ignore[assignment]
    _proxy = None  # type: ignore[assignment]

__all__ = ["IncomingHandler", "Request", "Response", "send"]


@dataclass
class Request:
    """An HTTP request; incoming requests have lower-case header names."""

    method: str
    uri: str
    headers: MutableMapping[str, str]
    body: bytes | None


@dataclass
class Response:
    """An HTTP response."""

    status: int
    headers: MutableMapping[str, str]
    body: bytes | None


class IncomingHandler:
    """Base class of Spin-style HTTP guests: override `handle_request`."""

    def handle_request(self, request: Request) -> Response:
        """Handle an incoming HTTP request and return a response or raise an error."""
        raise NotImplementedError("override IncomingHandler.handle_request")

    def handle(self, request: Any, response_out: Any = None) -> Any:
        """The export componentize-py calls: converts the request and calls `handle_request`.

        In `wasikv:app/spin-http` the request is a record and the response is
        returned; in the proxy worlds (`response_out` given) the request is an
        `incoming-request`, its body read from its stream, and the response is
        sent through `response_out`. An exception from `handle_request` (or a
        response that cannot be sent) is a 500 with an empty body, its
        traceback on stderr, as in spin_sdk.
        """
        if response_out is not None:
            self._handle_proxy(request, response_out)
            return None
        from ..wit.exports import incoming_handler as wit

        incoming = Request(
            request.method,
            request.uri,
            {name.lower(): value for name, value in request.headers},
            bytes(request.body),
        )
        try:
            status, headers, body = _outgoing(self.handle_request(incoming))
        except Exception:
            traceback.print_exc(file=sys.stderr)
            return wit.Response(500, [], b"")
        return wit.Response(status, headers, body)

    def _handle_proxy(self, request: Any, response_out: Any) -> None:
        method, uri, headers, body = _proxy.read_request(request)
        incoming = Request(method, uri, dict(headers), body)
        try:
            status, pairs, data = _outgoing(self.handle_request(incoming), limit=None)
            _proxy.send_response(response_out, status, pairs, [data], len(data))
        except Exception:
            traceback.print_exc(file=sys.stderr)
            _proxy.send_response(response_out, 500, [], [], 0)


def _outgoing(
    response: Response, limit: int | None = HOSTCALL_BUDGET_BYTES
) -> tuple[int, list[tuple[str, str]], bytes]:
    """A `Response` as the record's fields, or an exception saying why it cannot be sent.

    `limit` is the most a body may hold (None: no limit, as in the proxy worlds).
    """
    if not isinstance(response, Response):
        raise TypeError(f"handle_request returned {type(response).__name__}, not http.Response")
    body = b"" if response.body is None else response.body
    if not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError(f"Response body must be bytes or None, not {type(body).__name__}")
    if limit is not None and len(body) > limit:
        # wasmtime would trap returning it: say why instead.
        raise ValueError(f"response body of {len(body)} bytes is over the {limit} bytes one call can carry")
    return response.status, list(response.headers.items()), bytes(body)


def send(request: Request) -> Response:
    """Send an HTTP request and return the whole response (through `wasikv_sdk.outbound.send`).

    The URL's scheme, host and port must be allowed by the component's
    `allowed_outbound_hosts`, as in Spin. Raises
    `wasikv_sdk.outbound.HttpError` (its `code` the wasi:http error-code case,
    `HTTP-request-denied` for a URL the manifest does not allow) where
    spin_sdk raises its wasi:http error.
    """
    if outbound is None:
        raise RuntimeError("http.send works inside a component only")
    reply = outbound.send(
        http.Request(request.method, request.uri, dict(request.headers), request.body or b"")
    )
    headers = dict(reply.headers)  # a dict already: typed as either form
    body = reply.body.encode() if isinstance(reply.body, str) else reply.body
    return Response(reply.status, headers, body)
