"""A wasikv_sdk.http app built for either HTTP world (tests/test_portable.py).

- `POST /counter` increments "counter" in the default store, `GET` reads it
  (501 when built for wasikv:app/wasi-proxy, which has no key-value);
- `GET /stream?n=N` answers N lines through a `StreamingResponse`;
- `POST /echo` answers the request's method, path, a header and its body;
- `GET /fail-late` raises after its first chunk is sent: the body is cut short;
- `GET /bad-header` and `/bad-status` answer what HTTP cannot carry;
- `POST /mirror` prints each line of the body, and answers with each
  `x-set-NAME` request header as `NAME` (a `date` or `server` of its own).
"""

from __future__ import annotations

from collections.abc import Iterator

from wasikv_sdk import http

try:
    from wasikv_sdk import key_value
except ImportError:  # wasikv:app/wasi-proxy has no wasi:keyvalue bindings
    key_value = None  # type: ignore[assignment]


def lines(count: int) -> Iterator[str]:
    for number in range(1, count + 1):
        yield f"line {number} of {count}\n"


def fail_late() -> Iterator[bytes]:
    yield b"first chunk\n"
    raise RuntimeError("the body broke after its first chunk")


class Portable(http.Handler):
    def handle(self, request: http.Request) -> http.Response | http.StreamingResponse:
        if request.path == "/counter":
            if key_value is None:
                return http.Response(501, {}, "no key-value in this world\n")
            with key_value.open_default() as bucket:
                posted = request.method == "POST"
                count = bucket.increment("counter") if posted else int(bucket.get("counter") or 0)
            return http.Response(200, {"content-type": "text/plain"}, f"{count}\n")
        if request.path == "/stream":
            return http.StreamingResponse(200, {"content-type": "text/plain"}, lines(int(request.query["n"])))
        if request.path == "/echo":
            said = f"{request.method} {request.uri} x-test={request.headers.get('x-test')} body="
            return http.Response(200, [("x-echo", "yes")], said.encode() + request.body)
        if request.path == "/mirror":
            for line in request.body.decode().splitlines():
                print(line)
            chosen = [
                (name[len("x-set-") :], value)
                for name, value in request.headers.items()
                if name.lower().startswith("x-set-")
            ]
            return http.Response(200, chosen, "mirrored\n")
        if request.path == "/bad-header":
            return http.Response(200, {"x-price": "10 €"}, "a value beyond Latin-1\n")
        if request.path == "/bad-status":
            return http.Response(42, {}, "not a status\n")
        if request.path == "/fail-late":
            return http.StreamingResponse(200, {}, fail_late())
        return http.Response(404, {}, "not found\n")


IncomingHandler = http.incoming_handler(Portable)
Http = Portable
