"""The `wasi:http/incoming-handler` side of the SDK's HTTP handlers: reading an
`incoming-request`, answering through a `response-outparam`.

Used by `wasikv_sdk.http.incoming_handler` and `wasikv_sdk.spin.http.IncomingHandler`
when a component is built for `wasikv:app/proxy` or `wasikv:app/wasi-proxy`.
Guest-only: it imports the generated `wasi:http/types` and `wasi:io/streams`
bindings (every world of wasikv's has them).
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterable

from componentize_py_types import Err, Ok

from .wit.imports import streams
from .wit.imports import wasi_http_types as wit

__all__ = ["HOP_BY_HOP", "read_request", "send_response"]

#: Response headers the adapter drops, as wasikv's record trigger does: the
#: server frames the response (and wasi:http refuses some of them).
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}
)
_READ_CHUNK = 65536


def read_request(request: wit.IncomingRequest) -> tuple[str, str, list[tuple[str, str]], bytes]:
    """The method (upper-case), path and query, headers (lower-case names) and whole body of `request`.

    The body is read from its `wasi:io` stream to the end. `request` is
    dropped afterwards.
    """
    with request:
        method = request.method()
        if isinstance(method, wit.Method_Other):
            name = method.value
        else:
            name = type(method).__name__.removeprefix("Method_").upper()
        uri = request.path_with_query() or "/"
        with request.headers() as fields:
            headers = [(key.lower(), value.decode("latin-1")) for key, value in fields.entries()]
        body = _read_body(request.consume())
    return name, uri, headers, body


def _read_body(body: wit.IncomingBody) -> bytes:
    chunks = []
    with body, body.stream() as stream:
        while True:
            try:
                chunks.append(stream.blocking_read(_READ_CHUNK))
            except Err as err:
                if isinstance(err.value, streams.StreamError_Closed):
                    break
                why = err.value.value.to_debug_string()
                raise OSError(f"reading the request body failed: {why}") from None
    return b"".join(chunks)


def send_response(
    response_out: wit.ResponseOutparam,
    status: int,
    headers: Iterable[tuple[str, str]],
    chunks: Iterable[bytes],
    length: int | None = None,
) -> None:
    """Answer `status` and `headers`, then write each of `chunks` to the client as it comes.

    Header names are lower-cased; `content-length` and hop-by-hop headers
    are dropped, and `length` (when the body's size is known) is sent as
    the `content-length`. Raises (`ValueError`, `UnicodeEncodeError`) before
    anything is sent when the head cannot be sent (a status outside
    100-999, a header wasi:http refuses, a value beyond Latin-1), so the
    caller can answer otherwise. An exception while the chunks are made is
    printed to stderr and leaves the body unfinished: the client sees it cut
    short, not complete.
    """
    pairs = [
        (name.lower(), value.encode("latin-1"))
        for name, value in headers
        if name.lower() not in HOP_BY_HOP and name.lower() != "content-length"
    ]
    if length is not None:
        pairs.append(("content-length", str(length).encode()))
    try:
        fields = wit.Fields.from_list(pairs)
    except Err as err:
        problem = type(err.value).__name__.removeprefix("HeaderError_")
        raise ValueError(f"wasi:http refuses the response headers ({problem}): {pairs!r}") from None
    response = wit.OutgoingResponse(fields)
    try:
        response.set_status_code(status)
    except Err:
        response.__exit__(None, None, None)
        raise ValueError(f"{status} is not an HTTP status code") from None
    body = response.body()
    wit.ResponseOutparam.set(response_out, Ok(response))
    stream = body.write()
    try:
        for chunk in chunks:
            _write(stream, chunk)
        stream.blocking_flush()
    except Err:
        finished = False  # the client is gone: nothing more to send
    except Exception:
        traceback.print_exc(file=sys.stderr)
        finished = False
    else:
        finished = True
    stream.__exit__(None, None, None)
    if finished:
        wit.OutgoingBody.finish(body, None)
    else:
        body.__exit__(None, None, None)  # dropped unfinished: the body is incomplete


def _write(stream: streams.OutputStream, chunk: bytes) -> None:
    """Write all of `chunk`, waiting while the host's buffer is full, and start flushing it."""
    view = memoryview(chunk)
    while view:
        room = stream.check_write()
        if room == 0:
            with stream.subscribe() as ready:
                ready.block()
            continue
        stream.write(bytes(view[:room]))
        view = view[room:]
    stream.flush()
