"""examples/http-counter as a `wasi:http/proxy` component (benchmarks/wasi_http.py).

POST increments the counter "counter" in bucket "" (the only bucket of
wasmtime's in-memory wasi:keyvalue store) and answers the count as text; GET
reads it. The same work as the wasikv guest: one store call and a small
text response per request.
"""

from __future__ import annotations

from componentize_py_types import Ok
from wit_world import exports
from wit_world.imports import atomics, store
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    Method_Get,
    Method_Post,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)

BUCKET = ""


def respond(
    response_out: ResponseOutparam, status: int, headers: list[tuple[str, bytes]], body: bytes
) -> None:
    # A known length spares the server chunked encoding, as uvicorn does for wasikv.
    length = ("content-length", str(len(body)).encode())
    response = OutgoingResponse(Fields.from_list([*headers, length]))
    response.set_status_code(status)
    outgoing = response.body()
    ResponseOutparam.set(response_out, Ok(response))
    # The body is a few bytes, under the 4096 a blocking write may take: no
    # event loop needed.
    with outgoing.write() as stream:
        stream.blocking_write_and_flush(body)
    OutgoingBody.finish(outgoing, None)


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        method = request.method()
        if not isinstance(method, (Method_Post, Method_Get)):
            respond(response_out, 405, [("allow", b"GET, POST")], b"method not allowed\n")
            return
        with store.open(BUCKET) as bucket:
            # The 0.2.0-draft has no integer get; adding 0 reads a counter.
            count = atomics.increment(bucket, "counter", 1 if isinstance(method, Method_Post) else 0)
        respond(response_out, 200, [("content-type", b"text/plain")], f"{count}\n".encode())
