"""The suite's guests, built as one component (one componentize-py build and compile instead of eight).

Built for the `wasikv:app/sdk` world, so the one component is a command, an
HTTP handler and a watcher:

- `Run`: `<component> GUEST [ARGS...]` runs GUEST, which then sees argv as if
  it had been built alone (`[<component>, ARGS...]`): `probe`, what the host
  gives a command (probe.py); `conformance`, every wasi:keyvalue function
  through the raw bindings (conformance.py); `sdk`, the Pythonic layer
  `wasikv_sdk.key_value` (sdk_layer.py); `primitives`, the coordination
  primitives (primitives.py). Any other argv[1] is one of hostile.py's
  misbehaviours (`loop`, `hog`, ...);
- `Http` serves paths under `/hostile/` with hostile.py and every other with
  http_probe.py's handler (`/echo`, `/count`, `/variables`, ...);
- `Watcher` hands keys under `hostile/` to hostile.py and every other to
  watch_probe.py, which records them in the store labelled `seen`.

The Spin-style handler (which wasikv serves only without `Http`) answers 404.
"""

import sys

import conformance
import hostile
import http_probe
import primitives
import probe
import sdk_layer
import watch_probe

from wasikv_sdk import http, key_value, watch
from wasikv_sdk.spin import http as spin_http
from wasikv_sdk.wit import exports

__all__ = ["Http", "IncomingHandler", "Run", "Watcher"]

#: The command guests, by their argv[1].
COMMANDS = {"probe": probe, "conformance": conformance, "sdk": sdk_layer, "primitives": primitives}
#: Requests and watched keys for hostile.py; the rest go to the probes.
HOSTILE_PATHS = "/hostile/"
HOSTILE_KEYS = "hostile/"


class Run(exports.Run):
    def run(self) -> None:
        guest = COMMANDS.get(sys.argv[1]) if len(sys.argv) > 1 else None
        if guest is None:
            hostile.run()
            return
        del sys.argv[1]
        guest.Run().run()


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
