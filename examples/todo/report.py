"""The report component: reads only the `counters` store (it is not granted `default`)."""

import json

from wasikv_sdk import http, key_value
from wasikv_sdk.errors import AccessDenied


class Http(http.Handler):
    def handle(self, request: http.Request) -> http.Response:
        with key_value.open("counters") as counters:
            created = int(counters.get("created") or b"0")
        try:
            key_value.open_default().close()
            todos_visible = True
        except AccessDenied:
            todos_visible = False
        body = {"created": created, "todos_visible": todos_visible}
        return http.Response(200, {"content-type": "application/json"}, json.dumps(body).encode())
