"""Probe guest: reports what the host gives a command component: argv, environment, filesystem.

argv[1] selects the behaviour: `report` prints JSON; `fail` raises (exit 1);
`trap` hits an unreachable path inside the host call stack (a real trap);
`variables NAME` prints its variables (wasi:config) and NAME's value as JSON.
`fetch URL [METHOD [BODY [HEADERS]]]` sends an outbound HTTP request (with
header `x-probe: yes` and the JSON object HEADERS) and prints the response,
or the error, as JSON (a body over 1 KiB as its SHA-256). `flood URL N`
starts N GET requests to URL at once, reads none of them, and prints how
many the host took and its errors for the rest, by error-code; `flood URL N
THEN` then sends to THEN too (still holding the others) and reports its error.
`late-body URL` sends a GET to URL, waits for its response, and only then
writes (an empty chunk) and finishes the request's body, as componentize-py's
and Spin's `send` may; it prints the status and whether the body took it.
"""

import hashlib
import json
import os
import sys
from urllib.parse import urlsplit

from componentize_py_types import Err, Ok

from wasikv_sdk import http, outbound, variables
from wasikv_sdk.wit import exports
from wasikv_sdk.wit.imports import outgoing_handler
from wasikv_sdk.wit.imports import wasi_http_types as wit


class Run(exports.Run):
    def run(self) -> None:
        mode = sys.argv[1] if len(sys.argv) > 1 else "report"
        if mode == "fail":
            print("failing on purpose", file=sys.stderr)
            raise RuntimeError("failing on purpose")
        if mode == "variables":
            report: dict = {"all": variables.get_all()}
            try:
                report["get"] = variables.get(sys.argv[2])
            except variables.NoSuchVariable as exc:
                report["error"] = f"{type(exc).__name__}: {exc}"
            print(json.dumps(report))
            return
        if mode == "trap":
            # repr recurses in C: the wasm stack overflows at once (a genuine trap).
            sys.setrecursionlimit(10**9)
            nested: list = []
            for _ in range(10**6):
                nested = [nested]
            repr(nested)
        if mode == "fetch":
            fetch(*sys.argv[2:])
            return
        if mode == "late-body":
            late_body(sys.argv[2])
            return
        if mode == "flood":
            flood(sys.argv[2], int(sys.argv[3]), *sys.argv[4:5])
            return
        try:
            root = sorted(os.listdir("/"))
        except OSError as exc:
            root = f"error: {type(exc).__name__}"
        print(json.dumps({"argv": sys.argv, "env": dict(os.environ), "root": root}))


def fetch(url: str, method: str = "GET", body: str = "", headers: str = "{}") -> None:
    request = http.Request(method, url, {"x-probe": "yes", **json.loads(headers)}, body.encode())
    try:
        response = outbound.send(request, timeout=10)
    except outbound.HttpError as exc:
        print(json.dumps({"error": exc.code, "message": str(exc)}))
        return
    # Large bodies are compared by digest, to keep the report short.
    received = response.body
    shown = received.decode() if len(received) <= 1024 else hashlib.sha256(received).hexdigest()
    print(json.dumps({"status": response.status, "headers": response.headers, "body": shown}))


def _request(url: str) -> wit.OutgoingRequest:
    parts = urlsplit(url)
    request = wit.OutgoingRequest(wit.Fields())
    request.set_scheme(wit.Scheme_Https() if parts.scheme == "https" else wit.Scheme_Http())
    request.set_authority(parts.netloc)
    request.set_path_with_query(parts.path or "/")
    return request


def late_body(url: str) -> None:
    request = _request(url)
    body = request.body()
    future = outgoing_handler.handle(request, None)
    with future.subscribe() as ready:
        ready.block()
    answer = future.get()
    assert answer is not None and isinstance(answer, Ok) and isinstance(answer.value, Ok), answer
    status = answer.value.value.status()
    try:
        with body.write() as stream:
            stream.blocking_write_and_flush(b"")
        wit.OutgoingBody.finish(body, None)
        written = "ok"
    except Err as err:
        written = type(err.value).__name__
    print(json.dumps({"status": status, "body": written}))


def flood(url: str, count: int, then: str | None = None) -> None:
    started = []  # kept, unread, until the command ends
    refused: dict = {}
    for _ in range(count):
        try:
            started.append(outgoing_handler.handle(_request(url), None))
        except Err as err:
            name = type(err.value).__name__
            refused[name] = refused.get(name, 0) + 1
    report: dict = {"started": len(started), "refused": refused}
    if then is not None:
        try:
            started.append(outgoing_handler.handle(_request(then), None))
            report["then"] = "started"
        except Err as err:
            report["then"] = type(err.value).__name__
    print(json.dumps(report))
