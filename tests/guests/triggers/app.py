"""The suite's HTTP and watcher guests, built as one component (one build and compile instead of two).

Built for the `wasikv:app/sdk` world: `Http` is http_probe.py's handler and
`Watcher` is watch_probe.py's, so the component serves both triggers. The
world's other exports are not this guest's business: the command fails and
the Spin-style handler (which wasikv serves only without `Http`) answers 404.
"""

from http_probe import Http
from watch_probe import Watcher

from wasikv_sdk.spin import http as spin_http
from wasikv_sdk.wit import exports

__all__ = ["Http", "IncomingHandler", "Run", "Watcher"]


class Run(exports.Run):
    def run(self) -> None:
        raise RuntimeError("this guest serves the HTTP and watch triggers (wasikv up), it is no command")


class IncomingHandler(spin_http.IncomingHandler):
    def handle_request(self, request: spin_http.Request) -> spin_http.Response:
        return spin_http.Response(404, {"content-type": "text/plain"}, b"see Http\n")
