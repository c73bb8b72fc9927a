"""`spin_sdk.http` for wasikv: `Request`, `Response`, `IncomingHandler` and `send`.

A component built for `wasikv:app/spin-http` exports `incoming-handler`,
whose binding class componentize-py calls `IncomingHandler`. Subclass
`IncomingHandler` under that name and override `handle_request`, as in
spin-sdk 3.x::

    from wasikv_sdk.spin import http
    from wasikv_sdk.spin.http import Request, Response

    class IncomingHandler(http.IncomingHandler):
        def handle_request(self, request: Request) -> Response:
            return Response(200, {"content-type": "text/plain"}, b"Hello from Python!")

Differences from spin_sdk: the request arrives as wasikv's plain records
rather than wasi:http resources (so request headers carry wasikv's
`spin-*` route headers), and `send` raises `wasikv_sdk.outbound.HttpError`.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from .. import http
from ..constants import HOSTCALL_BUDGET_BYTES

# Imported now, not in `send`: a component imports nothing after it is built
# (it has no files to import from). Outside one, the bindings are missing.
try:
    from .. import outbound
except ImportError:
    outbound = None  # type: ignore[assignment]

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

    def handle(self, request: Any) -> Any:
        """The `wasikv:app/incoming-handler` export: converts records and calls `handle_request`.

        An exception from `handle_request` (or a response that cannot be
        sent) is a 500 with an empty body, its traceback on stderr, as in
        spin_sdk.
        """
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


def _outgoing(response: Response) -> tuple[int, list[tuple[str, str]], bytes]:
    """A `Response` as the record's fields, or an exception saying why it cannot be sent."""
    if not isinstance(response, Response):
        raise TypeError(f"handle_request returned {type(response).__name__}, not http.Response")
    body = b"" if response.body is None else response.body
    if not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError(f"Response body must be bytes or None, not {type(body).__name__}")
    if len(body) > HOSTCALL_BUDGET_BYTES:
        # wasmtime would trap returning it: say why instead.
        raise ValueError(
            f"response body of {len(body)} bytes is over the {HOSTCALL_BUDGET_BYTES} bytes one call can carry"
        )
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
