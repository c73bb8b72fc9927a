"""An HTTP guest for the trigger tests: each path exercises one behaviour (`/variables`: wasi:config)."""

import json
import sys

from wasikv_sdk import http, key_value, outbound, variables

# Module state lives as long as the instance: with a fresh instance per
# request it must be 1 on every request.
REQUESTS_SEEN = 0


class Http(http.Handler):
    def handle(self, request: http.Request) -> http.Response:
        global REQUESTS_SEEN
        REQUESTS_SEEN += 1
        path = request.path_info or request.path
        if path.endswith("/echo"):
            report = {
                "method": request.method,
                "uri": request.uri,
                "path": request.path,
                "query": request.query,
                "route": request.route,
                "path_info": request.path_info,
                "headers": request.headers,
                "body_len": len(request.body),
                "requests_seen": REQUESTS_SEEN,
            }
            return http.Response(200, {"content-type": "application/json"}, json.dumps(report).encode())
        if path.endswith("/trap"):
            # repr recurses in C: the wasm stack overflows at once (a genuine trap).
            sys.setrecursionlimit(10**9)
            nested: list = []
            for _ in range(10**6):
                nested = [nested]
            repr(nested)
        if path.endswith("/raise"):
            raise RuntimeError("handler failed on purpose")
        if path.endswith("/text"):
            return http.Response(200, {}, "héllo\n")
        if path.endswith("/int-body"):
            return http.Response(200, {}, 42)  # type: ignore[arg-type]
        if path.endswith("/bad-status"):
            return http.Response(999, {}, b"")
        if path.endswith("/bad-header"):
            return http.Response(200, {"bad\nname": "x"}, b"")
        if path.endswith("/count"):
            with key_value.open_default() as bucket:
                return http.Response(200, {}, str(bucket.increment("count")).encode())
        if path.endswith("/open"):
            label = request.query.get("label", "default")
            try:
                key_value.open(label).close()
                return http.Response(200, {}, b"opened")
            except Exception as exc:
                return http.Response(403, {}, type(exc).__name__.encode())
        if path.endswith("/variables"):
            # Every variable, and ?name=: one through variables.get (or the error it raised).
            report: dict = {"all": variables.get_all()}
            name = request.query.get("name")
            if name is not None:
                try:
                    report["get"] = variables.get(name)
                except variables.VariableError as exc:
                    report["error"] = type(exc).__name__
            return http.Response(200, {"content-type": "application/json"}, json.dumps(report).encode())
        if path.endswith("/fetch"):
            try:
                fetched = outbound.send(http.Request("GET", request.query["url"]), timeout=10)
            except outbound.HttpError as exc:
                return http.Response(502, {}, exc.code.encode())
            return http.Response(200, {}, f"{fetched.status} {fetched.body.decode()}".encode())
        return http.Response(404, {}, b"no such probe\n")
