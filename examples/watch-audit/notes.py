"""Notes over HTTP: PUT, GET and DELETE /notes/NAME store a note under `notes/NAME`."""

from wasikv_sdk import http, key_value


class Http(http.Handler):
    def handle(self, request: http.Request) -> http.Response:
        name = request.path_info.lstrip("/")
        if not name:
            return http.Response(404, {"content-type": "text/plain"}, b"use /notes/NAME\n")
        key = f"notes/{name}"
        with key_value.open_default() as bucket:
            if request.method == "PUT":
                bucket.set(key, request.body)
                return http.Response(204)
            if request.method == "DELETE":
                bucket.delete(key)
                return http.Response(204)
            if request.method == "GET":
                note = bucket.get(key)
                if note is None:
                    return http.Response(404, {"content-type": "text/plain"}, b"no such note\n")
                return http.Response(200, {"content-type": "text/plain"}, note)
        return http.Response(405, {"allow": "GET, PUT, DELETE"}, b"method not allowed\n")
