"""A Spin app that routes with a package from PyPI (http-router), ported to wasikv.

Its directory is kept as a Spin user has it: spin.toml with Spin's build
command, and a requirements.txt that pins spin-sdk and componentize-py
(skipped) next to http-router (installed for the guest). Only the imports
of spin_sdk changed.
"""

import sys
from urllib.parse import ParseResult, parse_qs, urlparse

import http_router
from http_router import NotFound, Router

from wasikv_sdk.spin import http
from wasikv_sdk.spin.http import Request, Response

router = Router(trim_last_slash=True)


@router.route("/")
def index(uri: ParseResult, request: Request) -> Response:
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    text = f"Hello from http-router {http_router.__version__} on Python {python}"
    return Response(200, {"content-type": "text/plain"}, text.encode())


@router.route("/queryparams")
def queryparams(uri: ParseResult, request: Request) -> Response:
    return Response(200, {"content-type": "text/plain"}, parse_qs(uri.query)["foo"][0].encode())


class IncomingHandler(http.IncomingHandler):
    def handle_request(self, request: Request) -> Response:
        uri = urlparse(request.uri)
        try:
            match = router(uri.path, request.method)
        except NotFound:
            return Response(404, {"content-type": "text/plain"}, b"not found\n")
        return match.target(uri, request)
