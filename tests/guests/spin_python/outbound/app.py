"""A Spin HTTP app (spin-sdk 3.4.1) making an outbound request with `spin_sdk.http.send`.

It GETs the URL in the request's `x-upstream-url` header, or else in the
`upstream_url` variable, and answers 200 with what came back as JSON
(status, content-type, body); 502 with the error when the request failed.
"""

import json

from spin_sdk import http, variables
from spin_sdk.http import Request, Response, send


class IncomingHandler(http.IncomingHandler):
    def handle_request(self, request: Request) -> Response:
        url = request.headers.get("x-upstream-url") or variables.get("upstream_url")
        try:
            upstream = send(Request("GET", url, {"user-agent": "spin-outbound-test"}, None))
        except Exception as e:  # spin-sdk raises the wasi:http error code (or its own errors)
            report = {"url": url, "error": type(getattr(e, "value", e)).__name__, "detail": repr(e)}
            return Response(502, {"content-type": "application/json"}, json.dumps(report).encode())
        report = {
            "url": url,
            "status": upstream.status,
            "content_type": upstream.headers.get("content-type"),
            "body": (upstream.body or b"").decode("utf-8", "replace"),
        }
        return Response(
            200, {"content-type": "application/json"}, json.dumps(report, sort_keys=True).encode()
        )
