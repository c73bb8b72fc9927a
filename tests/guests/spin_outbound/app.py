# A Spin HTTP component for spin-sdk 3.x that fetches the URL in its
# `upstream_url` variable and relays what came back.
from wasikv_sdk.spin import http, variables
from wasikv_sdk.spin.http import Request, Response, send


class IncomingHandler(http.IncomingHandler):
    def handle_request(self, request: Request) -> Response:
        url = variables.get("upstream_url")
        upstream = send(Request("GET", url, {}, None))
        return Response(
            200,
            {"content-type": "text/plain"},
            bytes(f"upstream said {upstream.status}: ", "utf-8") + (upstream.body or b""),
        )
