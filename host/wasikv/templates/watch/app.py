"""{{name}}: notes over HTTP, and a key-value watcher that keeps their word counts.

Both components are built from this module: `Http` for the
`wasikv:app/http-trigger` world (http.wasm), `Watcher` for the
`wasikv:app/watch-trigger` world (watcher.wasm).

- `PUT /notes/NAME` stores the request body under `notes/NAME` in the
  `default` store, `GET` reads it, `DELETE` removes it.
- The watcher is told about every write under `notes/` (whoever makes it) and
  keeps the note's word count under `words/NAME`; `GET /words/NAME` reads it.
  It writes outside `notes/`, so its own writes do not trigger it again.
"""

from wasikv_sdk import http, key_value, watch

TEXT = {"content-type": "text/plain"}


class Http(http.Handler):
    def handle(self, request: http.Request) -> http.Response:
        kind, _, name = request.path_info.strip("/").partition("/")
        if kind not in ("notes", "words") or not name:
            return http.Response(404, TEXT, b"use /notes/NAME or /words/NAME\n")
        key = f"{kind}/{name}"
        with key_value.open_default() as bucket:
            if request.method == "GET":
                value = bucket.get(key)
                if value is None:
                    return http.Response(404, TEXT, f"no {key}\n".encode())
                return http.Response(200, TEXT, value)
            if kind == "notes" and request.method == "PUT":
                bucket.set(key, request.body)
                return http.Response(204)
            if kind == "notes" and request.method == "DELETE":
                bucket.delete(key)
                return http.Response(204)
        return http.Response(405, {"allow": "GET, PUT, DELETE"}, b"method not allowed\n")


class Watcher(watch.Watcher):
    # The host delivers each change at least once: setting (not incrementing)
    # keeps a repeated delivery harmless.
    def on_set(self, bucket: key_value.Bucket, key: str, value: bytes) -> None:
        name = key.removeprefix("notes/")
        words = len(value.decode("utf-8", "replace").split())
        bucket.set(f"words/{name}", str(words).encode())

    def on_delete(self, bucket: key_value.Bucket, key: str) -> None:
        bucket.delete(f"words/{key.removeprefix('notes/')}")
