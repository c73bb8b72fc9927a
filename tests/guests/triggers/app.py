"""The suite's trigger and hostile guests, built as one component (one build and compile instead of three).

Built for the `wasikv:app/sdk` world, so the one component is a command, an
HTTP handler and a watcher:

- `Run` is hostile.py's command: argv[1] names a misbehaviour (`loop`, `hog`, ...);
- `Http` serves paths under `/hostile/` with hostile.py and every other with
  http_probe.py's handler (`/echo`, `/count`, `/variables`, ...);
- `Watcher` hands keys under `hostile/` to hostile.py and every other to
  watch_probe.py, which records them in the store labelled `seen`.

The Spin-style handler (which wasikv serves only without `Http`) answers 404.
"""

import hostile
import http_probe
import watch_probe

from wasikv_sdk import http, key_value, watch
from wasikv_sdk.spin import http as spin_http
from wasikv_sdk.wit import exports

__all__ = ["Http", "IncomingHandler", "Run", "Watcher"]

#: Requests and watched keys for hostile.py; the rest go to the probes.
HOSTILE_PATHS = "/hostile/"
HOSTILE_KEYS = "hostile/"


class Run(exports.Run):
    def run(self) -> None:
        hostile.run()


class Http(http.Handler):
    def handle(self, request: http.Request) -> http.Response:
        if request.path.startswith(HOSTILE_PATHS):
            return hostile.handle(request)
        return http_probe.Http().handle(request)


class Watcher(watch.Watcher):
    def on_set(self, bucket: key_value.Bucket, key: str, value: bytes) -> None:
        if key.startswith(HOSTILE_KEYS):
            hostile.on_set(bucket, key, value)
        else:
            watch_probe.on_set(bucket, key, value)

    def on_delete(self, bucket: key_value.Bucket, key: str) -> None:
        if not key.startswith(HOSTILE_KEYS):
            watch_probe.on_delete(bucket, key)


class IncomingHandler(spin_http.IncomingHandler):
    def handle_request(self, request: spin_http.Request) -> spin_http.Response:
        return spin_http.Response(404, {"content-type": "text/plain"}, b"see Http\n")
