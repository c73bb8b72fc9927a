"""A Spin HTTP app (spin-sdk 3.4.1): hello at `/`, and the request as JSON at `/echo...`."""

import hashlib
import json

from spin_sdk import http
from spin_sdk.http import Request, Response


class IncomingHandler(http.IncomingHandler):
    def handle_request(self, request: Request) -> Response:
        if request.uri.startswith("/echo"):
            body = request.body or b""
            report = {
                "method": request.method,
                "uri": request.uri,
                "headers": dict(sorted(request.headers.items())),
                "body_length": len(body),
                "body_sha256": hashlib.sha256(body).hexdigest(),
            }
            return Response(
                200, {"content-type": "application/json"}, json.dumps(report, sort_keys=True).encode()
            )
        return Response(200, {"content-type": "text/plain"}, b"Hello from a Spin Python app\n")
