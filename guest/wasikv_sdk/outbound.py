"""Outbound HTTP from a guest: `send(Request) -> Response` over `wasi:http/outgoing-handler`.

Guest-only: it imports the generated `wasi:http@0.2.0` bindings. Example::

    from wasikv_sdk import http, outbound

    response = outbound.send(http.Request("GET", "http://127.0.0.1:8080/status"))
    print(response.status, response.headers.get("content-type"), response.body)

The host lets a request out only to a scheme, host and port the
component's manifest allows (`allowed_outbound_hosts = ["https://api.example.com"]`,
Spin's syntax; `Host.run(allowed_outbound_hosts=[...])`, `wasikv run
--allow-outbound ENTRY`); any other fails with `HTTP-request-denied` before
anything is sent. Every failure the host reports (denied, DNS, connection
refused, timeouts, a malformed request) is raised as `HttpError`, whose
`code` is the `wasi:http` `error-code` case name.

`send` blocks until the whole response body has arrived. The guest's
deadline (a request's or a run's timeout) stops it even while it waits;
`timeout` bounds each wait for the server (connecting, the response head,
each part of the body) and raises `HttpError` instead, which the guest can
handle.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from componentize_py_types import Err, Ok

from .http import Request, Response
from .wit.imports import outgoing_handler, streams
from .wit.imports import wasi_http_types as wit

__all__ = ["HttpError", "send"]

# `blocking-write-and-flush` takes at most this many bytes per call.
_WRITE_CHUNK = 4096
_READ_CHUNK = 65536
_ACRONYMS = {"dns": "DNS", "ip": "IP", "tls": "TLS", "http": "HTTP", "uri": "URI"}
_METHODS: dict[str, Any] = {
    "GET": wit.Method_Get(),
    "HEAD": wit.Method_Head(),
    "POST": wit.Method_Post(),
    "PUT": wit.Method_Put(),
    "DELETE": wit.Method_Delete(),
    "CONNECT": wit.Method_Connect(),
    "OPTIONS": wit.Method_Options(),
    "TRACE": wit.Method_Trace(),
    "PATCH": wit.Method_Patch(),
}


class HttpError(Exception):
    """An outbound request failed.

    `code` is the `wasi:http` error-code case (`HTTP-request-denied`,
    `connection-refused`, `DNS-error`, ...), or `header-error` for a request
    header the host refuses (such as `host` or `connection`).
    """

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code


def send(request: Request, *, timeout: float | None = None) -> Response:
    """Send `request` (its `uri` absolute: `http://host:port/path?query`) and read the whole response.

    `timeout` (seconds) bounds connecting, the wait for the response's
    first byte, and each wait between body chunks. Response header names
    are lower-case; repeated headers are joined with ", ". Raises
    `HttpError` for every failure the host reports, and `ValueError` for a
    `uri` that is not an absolute http(s) URL.
    """
    outgoing = _outgoing_request(request)
    body = outgoing.body()
    try:
        future = _handle(outgoing, timeout)
    except BaseException:
        body.__exit__(None, None, None)
        raise
    with future:
        _write_body(body, request.body or b"")
        return _read_response(_wait(future))


def _outgoing_request(request: Request) -> wit.OutgoingRequest:
    parts = urlsplit(request.uri)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"send needs an absolute http:// or https:// URL, not {request.uri!r}")
    pairs = [(name, value.encode()) for name, value in request.headers.items()]
    if request.body and not any(name.lower() == "content-length" for name, _ in pairs):
        # Without a length wasmtime sends the body chunked, which many servers refuse.
        pairs.append(("content-length", str(len(request.body)).encode()))
    try:
        headers = wit.Fields.from_list(pairs)
    except Err as err:
        problem = type(err.value).__name__.removeprefix("HeaderError_")
        raise HttpError("header-error", f"{problem} in {request.headers!r}") from None
    outgoing = wit.OutgoingRequest(headers)
    method = request.method.upper()
    path = parts.path or "/"
    try:
        outgoing.set_method(_METHODS.get(method) or wit.Method_Other(method))
        outgoing.set_scheme(wit.Scheme_Https() if parts.scheme == "https" else wit.Scheme_Http())
        outgoing.set_authority(parts.netloc)
        outgoing.set_path_with_query(f"{path}?{parts.query}" if parts.query else path)
    except Err:
        outgoing.__exit__(None, None, None)
        raise HttpError("HTTP-request-URI-invalid", f"{request.method} {request.uri}") from None
    return outgoing


def _handle(outgoing: wit.OutgoingRequest, timeout: float | None) -> wit.FutureIncomingResponse:
    try:
        return outgoing_handler.handle(outgoing, None if timeout is None else _options(timeout))
    except Err as err:
        raise _error(err.value) from None


def _options(timeout: float) -> wit.RequestOptions:
    nanoseconds = int(timeout * 1e9)
    options = wit.RequestOptions()
    try:
        options.set_connect_timeout(nanoseconds)
        options.set_first_byte_timeout(nanoseconds)
        options.set_between_bytes_timeout(nanoseconds)
    except Err:
        options.__exit__(None, None, None)
        raise HttpError("configuration-error", "the host does not support request timeouts") from None
    return options


def _write_body(body: wit.OutgoingBody, data: bytes) -> None:
    with body.write() as stream:
        view = memoryview(data)
        for start in range(0, len(view), _WRITE_CHUNK):
            try:
                stream.blocking_write_and_flush(bytes(view[start : start + _WRITE_CHUNK]))
            except Err:
                # The request failed while we wrote: the response says why.
                break
    try:
        wit.OutgoingBody.finish(body, None)
    except Err as err:  # e.g. a `content-length` the body does not match
        raise _error(err.value) from None


def _wait(future: wit.FutureIncomingResponse) -> wit.IncomingResponse:
    with future.subscribe() as ready:
        ready.block()
    outcome = future.get()
    if not isinstance(outcome, Ok) or not isinstance(outcome.value, Ok):
        code = outcome.value.value if isinstance(outcome, Ok) else None
        raise _error(code) if code is not None else HttpError("internal-error", "no response")
    response: wit.IncomingResponse = outcome.value.value
    return response


def _read_response(incoming: wit.IncomingResponse) -> Response:
    with incoming:
        status = incoming.status()
        with incoming.headers() as fields:
            headers: dict[str, str] = {}
            for name, value in fields.entries():
                key, text = name.lower(), value.decode("latin-1")
                headers[key] = f"{headers[key]}, {text}" if key in headers else text
        with incoming.consume() as body, body.stream() as stream:
            chunks = []
            while True:
                try:
                    chunks.append(stream.blocking_read(_READ_CHUNK))
                except Err as err:
                    if isinstance(err.value, streams.StreamError_Closed):
                        break
                    raise HttpError("HTTP-response-incomplete", err.value.value.to_debug_string()) from None
    return Response(status, headers, b"".join(chunks))


def _error(code: Any) -> HttpError:
    """The `HttpError` for a `wasi:http` `error-code` value (its case name, and its payload if any)."""
    words = re.findall(r"[A-Z][a-z]*", type(code).__name__.removeprefix("ErrorCode_"))
    name = "-".join(_ACRONYMS.get(word.lower(), word.lower()) for word in words)
    payload = getattr(code, "value", None)
    return HttpError(name, "" if payload is None else str(payload))
