"""Probe guest: reports what the host gives a command component: argv, environment, filesystem.

argv[1] selects the behaviour: `report` prints JSON; `fail` raises (exit 1);
`trap` hits an unreachable path inside the host call stack (a real trap);
`variables NAME` prints its variables (wasi:config) and NAME's value as JSON.
`fetch URL [METHOD [BODY [HEADERS]]]` sends an outbound HTTP request (with
header `x-probe: yes` and the JSON object HEADERS) and prints the response,
or the error, as JSON (a body over 1 KiB as its SHA-256).
"""

import hashlib
import json
import os
import sys

from wasikv_sdk import http, outbound, variables
from wasikv_sdk.wit import exports


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
