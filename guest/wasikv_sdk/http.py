"""Serving HTTP from a guest: `Request`, `Response`, `StreamingResponse`, the `Handler`
base class and `incoming_handler`.

One `Handler` serves both kinds of HTTP world; the world a component is built
for (`-w`) picks the class componentize-py calls::

    from wasikv_sdk import http, key_value

    class Counter(http.Handler):
        def handle(self, request: http.Request) -> http.Response:
            with key_value.open_default() as bucket:
                hits = bucket.increment("hits")
            return http.Response(200, {"content-type": "text/plain"}, f"{hits}\\n".encode())

    IncomingHandler = http.incoming_handler(Counter)  # wasikv:app/proxy, wasikv:app/wasi-proxy
    Http = Counter                                    # wasikv:app/http-trigger

- `wasikv:app/proxy` exports the standard `wasi:http/incoming-handler`
  (class `IncomingHandler`): the component also runs on Spin; the request
  body is read from its stream, a `StreamingResponse`'s chunks reach the
  client as they are made.
- `wasikv:app/http-trigger` exports wasikv's `http` interface (class
  `Http`): request and response are one record each, which costs less per
  request on wasikv (no Python `wasi:http` layer in the host), but only
  wasikv runs it, and bodies are at most `HOSTCALL_BUDGET_BYTES`.

`Request` and `Response` are plain Python (importable on the host too); only
`Handler.handle_request` and the class `incoming_handler` makes, which the
host calls, touch the generated bindings. An exception escaping `handle`
becomes a 500 response; it does not trap.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from .constants import HOSTCALL_BUDGET_BYTES

__all__ = [
    "TEXT_CONTENT_TYPE",
    "Handler",
    "ProxyHandler",
    "Request",
    "Response",
    "StreamingResponse",
    "incoming_handler",
]

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


@dataclass
class StreamingResponse:
    """An outgoing response whose body is made while it is sent.

    `chunks` yields bytes, or `str` (sent as UTF-8).

    Built for `wasikv:app/proxy` (or `wasi-proxy`), each chunk is written to
    the client as it comes (no `content-length`; HTTP/1.1 sends it chunked),
    so a generator can answer with more than fits in memory. Built for
    `wasikv:app/http-trigger`, the chunks are joined into one body first.
    An exception from `chunks` once the head is sent cuts the body short
    (its traceback on stderr).
    """

    status: int = 200
    headers: Mapping[str, str] | Sequence[tuple[str, str]] = field(default_factory=dict)
    chunks: Iterable[bytes | str] = ()

    def header_pairs(self) -> list[tuple[str, str]]:
        """The headers as (name, value) pairs with lower-case names."""
        items = self.headers.items() if isinstance(self.headers, Mapping) else self.headers
        return [(name.lower(), value) for name, value in items]

    def encoded_chunks(self) -> Iterator[bytes]:
        """The chunks as bytes; a chunk of another type is a `TypeError` naming it."""
        for chunk in self.chunks:
            if isinstance(chunk, str):
                yield chunk.encode("utf-8")
            elif isinstance(chunk, (bytes, bytearray, memoryview)):
                yield bytes(chunk)
            else:
                raise TypeError(f"StreamingResponse chunks must be bytes or str, not {type(chunk).__name__}")


_ERROR_HEADERS = [("content-type", "text/plain")]
_ERROR_BODY = b"Internal Server Error\n"


class Handler:
    """Base class of HTTP guests: override `handle`.

    Name the subclass `Http` for `wasikv:app/http-trigger`, or make the
    `IncomingHandler` of the proxy worlds with `incoming_handler`.
    """

    def handle(self, request: Request) -> Response | StreamingResponse:
        """Serve one request."""
        raise NotImplementedError("override Handler.handle")

    def handle_request(self, request: Any) -> Any:
        """The `wasikv:app/http` export: converts records and calls `handle`."""
        from .wit.exports import http as wit_http

        incoming = _request(request.method, request.uri, request.headers, bytes(request.body))
        try:
            status, headers, chunks = _answer(self, incoming)
            body = b"".join(chunks)
        except Exception:
            traceback.print_exc(file=sys.stderr)
            return wit_http.Response(500, _ERROR_HEADERS, _ERROR_BODY)
        if len(body) > HOSTCALL_BUDGET_BYTES:
            # wasmtime would trap returning it: say why instead.
            print(
                f"response body of {len(body)} bytes is over the {HOSTCALL_BUDGET_BYTES} bytes"
                " one call can carry; answering 500",
                file=sys.stderr,
            )
            return wit_http.Response(500, _ERROR_HEADERS, b"Response Too Large\n")
        return wit_http.Response(status, headers, body)


def _request(method: str, uri: str, headers: Iterable[tuple[str, str]], body: bytes) -> Request:
    lowered = {name.lower(): value for name, value in headers}
    return Request(method=method, uri=uri, headers=lowered, body=body)


def _answer(handler: Handler, request: Request) -> tuple[int, list[tuple[str, str]], Iterable[bytes]]:
    """Call `handler.handle`: the status, headers and body chunks it answers.

    A `TypeError` if it answers something else than a response.
    """
    response = handler.handle(request)
    if isinstance(response, Response):
        body = response.body if isinstance(response.body, bytes) else response.body.encode("utf-8")
        return response.status, response.header_pairs(), [body]
    if isinstance(response, StreamingResponse):
        return response.status, response.header_pairs(), response.encoded_chunks()
    raise TypeError(f"handle returned {type(response).__name__}, not http.Response")


class ProxyHandler(Protocol):
    """What `incoming_handler` makes: the class of the `wasi:http/incoming-handler` export."""

    def handle(self, request: Any, response_out: Any) -> None:
        """Serve the `incoming-request` through the `response-outparam`."""


def incoming_handler(app: type[Handler]) -> type[ProxyHandler]:
    """The `IncomingHandler` class of `wasikv:app/proxy` (and `wasi-proxy`) serving with `app`.

    Bind it under that name at the top level of the app's module:
    `IncomingHandler = http.incoming_handler(App)`. Each request makes an
    `app()` and calls its `handle` with the request, its body read whole
    from its stream; the response's head is sent, then its body (a
    `Response`'s with its `content-length`, a `StreamingResponse`'s chunk by
    chunk). An exception from `handle`, or a head wasi:http cannot carry
    (a header value beyond Latin-1, say), is a 500 with its traceback on
    stderr, as in `wasikv:app/http-trigger`. The route headers wasikv adds
    there (`Request.route`, `path_info`) are not sent to this world by
    wasikv (Spin sends them). Anything but a `Handler` subclass for `app` is
    a `TypeError`, when the app's module is imported (so at build time).
    """
    if not (isinstance(app, type) and issubclass(app, Handler)):
        raise TypeError(f"incoming_handler takes a subclass of http.Handler, not {app!r}")
    # Imported now, not per request: a built component has no files to import from.
    from . import _proxy

    class _IncomingHandler:
        def handle(self, request: Any, response_out: Any) -> None:
            incoming = _request(*_proxy.read_request(request))
            try:
                status, headers, chunks = _answer(app(), incoming)
                whole = chunks if isinstance(chunks, list) else None
                length = None if whole is None else sum(len(chunk) for chunk in whole)
                _proxy.send_response(response_out, status, headers, chunks, length)
            except Exception:
                traceback.print_exc(file=sys.stderr)
                _proxy.send_response(response_out, 500, _ERROR_HEADERS, [_ERROR_BODY], len(_ERROR_BODY))

    _IncomingHandler.__name__ = _IncomingHandler.__qualname__ = "IncomingHandler"
    _IncomingHandler.__doc__ = f"`wasi:http/incoming-handler` serving with {app.__name__}."
    return _IncomingHandler
