"""A Spin HTTP app (spin-sdk 3.4.1) on Spin's key-value store.

GET /                 the keys, as JSON
GET /KEY              the value (404 when absent)
PUT /KEY              store the request body (204)
DELETE /KEY           delete it (204)
...?store=LABEL       on store LABEL instead of "default"
                      (404 no such store, 403 access denied)
"""

import json
from urllib.parse import parse_qs, unquote, urlsplit

from spin_sdk import http, key_value
from spin_sdk.http import Request, Response
from spin_sdk.wit.imports.key_value import Error_AccessDenied, Error_NoSuchStore, Error_Other
from spin_sdk.wit.types import Err


def text(status: int, body: str) -> Response:
    return Response(status, {"content-type": "text/plain"}, (body + "\n").encode())


class IncomingHandler(http.IncomingHandler):
    def handle_request(self, request: Request) -> Response:
        url = urlsplit(request.uri)
        key = unquote(url.path[1:])
        label = parse_qs(url.query).get("store", ["default"])[0]
        try:
            with key_value.open(label) as store:
                if not key:
                    keys = sorted(store.get_keys())
                    return Response(200, {"content-type": "application/json"}, json.dumps(keys).encode())
                if request.method == "GET":
                    value = store.get(key)
                    if value is None:
                        return text(404, f"no key {key}")
                    return Response(200, {"content-type": "application/octet-stream"}, value)
                if request.method == "PUT":
                    store.set(key, request.body or b"")
                    return Response(204, {}, None)
                if request.method == "DELETE":
                    store.delete(key)
                    return Response(204, {}, None)
                return text(405, "GET, PUT or DELETE")
        except Err as e:
            if isinstance(e.value, Error_NoSuchStore):
                return text(404, f"no such store {label}")
            if isinstance(e.value, Error_AccessDenied):
                return text(403, f"access to store {label} denied")
            if isinstance(e.value, Error_Other):
                return text(500, f"store error: {e.value.value}")
            raise
