"""Serving HTTP from a guest: `Request`, `Response` and the `Handler` base class.

A component built for the `wasikv:app/http-trigger` world exports the `http`
interface; componentize-py expects an exported class named `Http`::

    from wasikv_sdk import http, key_value

    class Http(http.Handler):
        def handle(self, request: http.Request) -> http.Response:
            with key_value.open_default() as bucket:
                hits = bucket.increment("hits")
            return http.Response(200, {"content-type": "text/plain"}, f"{hits}\\n".encode())

`Request` and `Response` are plain Python (importable on the host too); only
`Handler.handle_request`, which the host calls, touches the generated bindings.
An exception escaping `handle` becomes a 500 response; it does not trap.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .constants import HOSTCALL_BUDGET_BYTES

__all__ = ["TEXT_CONTENT_TYPE", "Handler", "Request", "Response"]

#: Headers the host adds to describe how the request was routed.
MATCHED_ROUTE = "spin-matched-route"
PATH_INFO = "spin-path-info"
FULL_URL = "spin-full-url"


@dataclass
class Request:
    """An incoming request; header names are lower-case."""

    method: str
    uri: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def path(self) -> str:
        """The path, without the query string."""
        return urlsplit(self.uri).path

    @property
    def query(self) -> dict[str, str]:
        """The query parameters (the last value wins for repeated names)."""
        return dict(parse_qsl(urlsplit(self.uri).query, keep_blank_values=True))

    @property
    def route(self) -> str:
        """The manifest route that matched, e.g. `/api/...`."""
        return self.headers.get(MATCHED_ROUTE, "")

    @property
    def path_info(self) -> str:
        """The part of the path after the matched route's base (`""` for exact routes)."""
        return self.headers.get(PATH_INFO, "")

    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode("utf-8")


#: The content type a `str` body gets unless the response names one.
TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"


@dataclass
class Response:
    """An outgoing response.

    `body` is bytes (or a bytearray/memoryview), or a `str`, sent as UTF-8
    with `content-type: text/plain; charset=utf-8` unless `headers` has one.
    Anything else is a `TypeError` naming its type.
    """

    status: int = 200
    headers: Mapping[str, str] | Sequence[tuple[str, str]] = field(default_factory=dict)
    body: bytes | str = b""

    def __post_init__(self) -> None:
        body = self.body
        if isinstance(body, str):
            self.body = body.encode("utf-8")
            if not any(name.lower() == "content-type" for name, _ in self.header_pairs()):
                self.headers = [*self.header_pairs(), ("content-type", TEXT_CONTENT_TYPE)]
        elif isinstance(body, (bytes, bytearray, memoryview)):
            self.body = bytes(body)
        else:
            raise TypeError(f"Response body must be bytes or str, not {type(body).__name__}")

    def header_pairs(self) -> list[tuple[str, str]]:
        """The headers as (name, value) pairs with lower-case names."""
        items = self.headers.items() if isinstance(self.headers, Mapping) else self.headers
        return [(name.lower(), value) for name, value in items]


class Handler:
    """Base class of HTTP guests: override `handle`."""

    def handle(self, request: Request) -> Response:
        """Serve one request."""
        raise NotImplementedError("override Handler.handle")

    def handle_request(self, request: Any) -> Any:
        """The `wasikv:app/http` export: converts records and calls `handle`."""
        from .wit.exports import http as wit_http

        incoming = Request(
            method=request.method,
            uri=request.uri,
            headers={name.lower(): value for name, value in request.headers},
            body=bytes(request.body),
        )
        try:
            response = self.handle(incoming)
        except Exception:
            traceback.print_exc(file=sys.stderr)
            return wit_http.Response(500, [("content-type", "text/plain")], b"Internal Server Error\n")
        if not isinstance(response, Response):
            print(
                f"handle returned {type(response).__name__}, not http.Response; answering 500",
                file=sys.stderr,
            )
            return wit_http.Response(500, [("content-type", "text/plain")], b"Internal Server Error\n")
        body = response.body if isinstance(response.body, bytes) else response.body.encode("utf-8")
        if len(body) > HOSTCALL_BUDGET_BYTES:
            # wasmtime would trap returning it: say why instead.
            print(
                f"response body of {len(body)} bytes is over the {HOSTCALL_BUDGET_BYTES} bytes"
                " one call can carry; answering 500",
                file=sys.stderr,
            )
            return wit_http.Response(500, [("content-type", "text/plain")], b"Response Too Large\n")
        return wit_http.Response(response.status, response.header_pairs(), body)
