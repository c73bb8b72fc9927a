"""A `wasi:http/proxy@0.2.0` guest for the request corpus (tests/http_corpus.py).

Built with componentize-py against the standard proxy world only, so the same
`.wasm` runs under `wasmtime serve` and under wasikv, and the two answers can
be compared. Each route exercises one part of wasi:http/types and wasi:io:

- `/echo/info`: method, path, scheme, authority, headers (every value of a
  repeated one, in order) and the body's length and SHA-256, as JSON;
- `/echo/body`: the request body streamed back with wasi:io/poll (the
  non-blocking style of componentize-py's `poll_loop`), the response sent
  before the body is read;
- `/echo/body-blocking`: the same with blocking reads and writes;
- `/echo/body-splice`: the same with `blocking-splice`, so the bytes never
  enter the guest's memory;
- `/echo/trailers`: the body's length and the request's trailers, as JSON;
- `/stream?chunks=N&size=M`: N chunks of M bytes, each written and flushed
  on its own (no content-length: the server frames it);
- `/trailers`: a body followed by response trailers (`?declare`: named in a
  `trailer` header first);
- `/early`: answered without ever reading the request body;
- `/error/raise`: an exception before any response (the guest traps);
- `/error/after-headers`: an exception after the headers and part of the body;
- `/error/outparam`: the guest answers with an error code instead of a response;
- `/status?code=N`: status N;
- `/empty`: 200 with an empty body; `/no-content`: 204;
- `/length`: a body sent with an explicit content-length;
- `/length/short`: content-length 100 but 10 bytes written (finish fails);
- `/headers`: repeated response headers;
- `/instance`: how many requests this instance has handled, and its random
  id (for instance reuse);
- `/leak?mib=N`: keeps N MiB more in a module global, and says how many it
  keeps (for instance reuse's memory bound);
- `/spin?ms=N`: busy for N ms (forever without `ms`);
- anything else: 404.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from urllib.parse import parse_qs, urlsplit

import poll_loop
from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import streams
from wit_world.imports.types import (
    ErrorCode_InternalError,
    Fields,
    IncomingBody,
    IncomingRequest,
    Method,
    Method_Other,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
    Scheme,
    Scheme_Other,
)

#: Module state lives as long as the instance: with a fresh instance per
#: request, `/instance` always says 1 (see the instance reuse tests). The id
#: is drawn on the first request: module code runs once, when the component
#: is built, and every instance starts from that snapshot.
REQUESTS_SEEN = 0
INSTANCE_ID = ""
KEPT: list[bytearray] = []

#: The most `blocking-write-and-flush` may take at once.
BLOCKING_WRITE_MAX = 4096


def method_name(method: Method) -> str:
    if isinstance(method, Method_Other):
        return method.value
    return type(method).__name__.removeprefix("Method_").upper()


def scheme_name(scheme: Scheme | None) -> str | None:
    if scheme is None:
        return None
    if isinstance(scheme, Scheme_Other):
        return scheme.value
    return type(scheme).__name__.removeprefix("Scheme_").lower()


def grouped(entries: list[tuple[str, bytes]]) -> dict[str, list[str]]:
    """Every value of each name, in the order received (names sorted: servers may regroup them)."""
    found: dict[str, list[str]] = {}
    for name, value in entries:
        found.setdefault(name.lower(), []).append(value.decode("latin-1"))
    return dict(sorted(found.items()))


def read_all(body: IncomingBody) -> bytes:
    """The whole body, read with blocking reads; the body is finished (trailers ignored)."""
    data = bytearray()
    with body.stream() as stream:
        while True:
            try:
                data += stream.blocking_read(65536)
            except Err as e:
                if isinstance(e.value, streams.StreamError_Closed):
                    break
                raise
    IncomingBody.finish(body).__exit__(None, None, None)
    return bytes(data)


def write_blocking(stream: streams.OutputStream, data: bytes) -> None:
    for start in range(0, len(data), BLOCKING_WRITE_MAX):
        stream.blocking_write_and_flush(data[start : start + BLOCKING_WRITE_MAX])


def respond(
    out: ResponseOutparam,
    status: int,
    body: bytes,
    headers: list[tuple[str, bytes]] = (),  # type: ignore[assignment]
    *,
    trailers: Fields | None = None,
) -> None:
    """Send a whole response at once."""
    response = OutgoingResponse(Fields.from_list(list(headers)))
    response.set_status_code(status)
    outgoing = response.body()
    ResponseOutparam.set(out, Ok(response))
    if body:
        with outgoing.write() as stream:
            write_blocking(stream, body)
    OutgoingBody.finish(outgoing, trailers)


def text(out: ResponseOutparam, status: int, body: str) -> None:
    respond(out, status, body.encode(), [("content-type", b"text/plain; charset=utf-8")])


def echo_info(request: IncomingRequest, out: ResponseOutparam) -> None:
    with request.headers() as fields:
        headers = grouped(fields.entries())
    body = read_all(request.consume())
    report = {
        "method": method_name(request.method()),
        "path_with_query": request.path_with_query(),
        "scheme": scheme_name(request.scheme()),
        "authority": request.authority(),
        "headers": headers,
        "body_length": len(body),
        "body_sha256": hashlib.sha256(body).hexdigest(),
    }
    respond(out, 200, json.dumps(report, sort_keys=True).encode(), [("content-type", b"application/json")])


async def echo_polling(request: IncomingRequest, out: ResponseOutparam) -> None:
    response = OutgoingResponse(Fields.from_list([("content-type", b"application/octet-stream")]))
    outgoing = response.body()
    ResponseOutparam.set(out, Ok(response))
    source = poll_loop.Stream(request.consume())
    sink = poll_loop.Sink(outgoing)
    while (chunk := await source.next()) is not None:
        await sink.send(chunk)
    sink.close()


def echo_blocking(request: IncomingRequest, out: ResponseOutparam) -> None:
    response = OutgoingResponse(Fields.from_list([("content-type", b"application/octet-stream")]))
    outgoing = response.body()
    ResponseOutparam.set(out, Ok(response))
    body = request.consume()
    with body.stream() as source, outgoing.write() as sink:
        while True:
            try:
                chunk = source.blocking_read(65536)
            except Err as e:
                if isinstance(e.value, streams.StreamError_Closed):
                    break
                raise
            write_blocking(sink, chunk)
    IncomingBody.finish(body).__exit__(None, None, None)
    OutgoingBody.finish(outgoing, None)


def echo_splicing(request: IncomingRequest, out: ResponseOutparam) -> None:
    response = OutgoingResponse(Fields.from_list([("content-type", b"application/octet-stream")]))
    outgoing = response.body()
    ResponseOutparam.set(out, Ok(response))
    body = request.consume()
    with body.stream() as source, outgoing.write() as sink:
        while True:
            try:
                sink.blocking_splice(source, 65536)
            except Err as e:
                if isinstance(e.value, streams.StreamError_Closed):
                    break
                raise
    IncomingBody.finish(body).__exit__(None, None, None)
    OutgoingBody.finish(outgoing, None)


def echo_trailers(request: IncomingRequest, out: ResponseOutparam) -> None:
    body = request.consume()
    length = 0
    with body.stream() as stream:
        while True:
            try:
                length += len(stream.blocking_read(65536))
            except Err as e:
                if isinstance(e.value, streams.StreamError_Closed):
                    break
                raise
    with IncomingBody.finish(body) as future:
        with future.subscribe() as ready:
            ready.block()
        result = future.get()
    assert result is not None, "trailers not ready after their pollable was"
    assert isinstance(result, Ok), "future-trailers.get called twice"
    if isinstance(result.value, Err):
        text(out, 500, f"reading the trailers failed: {result.value.value}\n")
        return
    fields = result.value.value if isinstance(result.value, Ok) else result.value
    trailers = None
    if fields is not None:
        with fields:
            trailers = grouped(fields.entries())
    report = {"body_length": length, "trailers": trailers}
    respond(out, 200, json.dumps(report, sort_keys=True).encode(), [("content-type", b"application/json")])


def stream_chunks(query: dict[str, list[str]], out: ResponseOutparam) -> None:
    chunks = int(query.get("chunks", ["64"])[0])
    size = int(query.get("size", ["1000"])[0])
    # Computing (never waiting in a host call) this long between chunks.
    pause = int(query.get("pause_ms", ["0"])[0]) / 1000
    response = OutgoingResponse(Fields.from_list([("content-type", b"application/octet-stream")]))
    outgoing = response.body()
    ResponseOutparam.set(out, Ok(response))
    with outgoing.write() as stream:
        for index in range(chunks):
            if index and pause:
                until = time.monotonic() + pause
                while time.monotonic() < until:
                    pass
            write_blocking(stream, bytes([65 + index % 26]) * size)
    OutgoingBody.finish(outgoing, None)


def with_trailers(query: dict[str, list[str]], out: ResponseOutparam) -> None:
    body = b"a body followed by trailers\n"
    headers = [("content-type", b"text/plain")]
    if "declare" in query:
        headers.append(("trailer", b"x-body-sha256, x-trailer"))
    trailers = Fields.from_list(
        [
            ("x-body-sha256", hashlib.sha256(body).hexdigest().encode()),
            ("x-trailer", b"one"),
            ("x-trailer", b"two"),
        ]
    )
    respond(out, 200, body, headers, trailers=trailers)


def after_headers_error(out: ResponseOutparam) -> None:
    response = OutgoingResponse(Fields.from_list([("content-type", b"text/plain")]))
    outgoing = response.body()
    ResponseOutparam.set(out, Ok(response))
    with outgoing.write() as stream:
        stream.blocking_write_and_flush(b"partial ")
    raise RuntimeError("the guest failed after sending the headers")


def short_body(out: ResponseOutparam) -> None:
    response = OutgoingResponse(Fields.from_list([("content-length", b"100")]))
    outgoing = response.body()
    ResponseOutparam.set(out, Ok(response))
    with outgoing.write() as stream:
        stream.blocking_write_and_flush(b"0123456789")
    try:
        OutgoingBody.finish(outgoing, None)
    except Err:
        pass  # expected: 10 bytes written, 100 declared


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        global REQUESTS_SEEN, INSTANCE_ID
        REQUESTS_SEEN += 1
        INSTANCE_ID = INSTANCE_ID or os.urandom(8).hex()
        url = urlsplit(request.path_with_query() or "/")
        path, query = url.path, parse_qs(url.query)
        if path == "/instance":
            text(response_out, 200, f"{REQUESTS_SEEN} {INSTANCE_ID}")
        elif path == "/leak":
            KEPT.append(bytearray(int(query.get("mib", ["1"])[0]) << 20))
            text(response_out, 200, f"{len(KEPT)} {sum(map(len, KEPT)) >> 20}")
        elif path == "/spin":
            until = time.monotonic() + int(query["ms"][0]) / 1000 if "ms" in query else None
            while until is None or time.monotonic() < until:
                pass
            text(response_out, 200, f"{REQUESTS_SEEN} {INSTANCE_ID}")
        elif path == "/echo/info":
            echo_info(request, response_out)
        elif path == "/echo/body":
            loop = poll_loop.PollLoop()
            asyncio.set_event_loop(loop)
            loop.run_until_complete(echo_polling(request, response_out))
        elif path == "/echo/body-blocking":
            echo_blocking(request, response_out)
        elif path == "/echo/body-splice":
            echo_splicing(request, response_out)
        elif path == "/echo/trailers":
            echo_trailers(request, response_out)
        elif path == "/stream":
            stream_chunks(query, response_out)
        elif path == "/trailers":
            with_trailers(query, response_out)
        elif path == "/early":
            text(response_out, 200, "answered before reading the body\n")
        elif path == "/error/raise":
            raise RuntimeError("the guest failed before answering")
        elif path == "/error/after-headers":
            after_headers_error(response_out)
        elif path == "/error/outparam":
            ResponseOutparam.set(response_out, Err(ErrorCode_InternalError("the guest reports an error")))
        elif path == "/status":
            code = int(query.get("code", ["200"])[0])
            if code in (204, 304) or code < 200:
                respond(response_out, code, b"")
            else:
                text(response_out, code, f"status {code}\n")
        elif path == "/empty":
            respond(response_out, 200, b"")
        elif path == "/no-content":
            respond(response_out, 204, b"")
        elif path == "/length":
            body = b"a body of a declared length\n"
            respond(response_out, 200, body, [("content-length", str(len(body)).encode())])
        elif path == "/length/short":
            short_body(response_out)
        elif path == "/headers":
            respond(
                response_out,
                200,
                b"repeated headers\n",
                [
                    ("set-cookie", b"a=1; Path=/"),
                    ("set-cookie", b"b=2; Path=/"),
                    ("x-multi", b"first"),
                    ("x-multi", b"second"),
                    ("x-single", b"only"),
                ],
            )
        else:
            text(response_out, 404, f"no route for {path}\n")
