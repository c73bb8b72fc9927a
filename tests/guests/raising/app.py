"""A guest whose every export raises (tests/test_guest_error_paths.py), built for wasikv:app/sdk.

The same uncaught ZeroDivisionError from `ratio` under `Run` (the command;
with argv[1] `err`, a raw binding's `Err` escapes `run` instead), `Http`
(the raw record-world export: no SDK handler catches it) and `Watcher`
(`on_set`). proxy.py raises it from a `wasi:http/incoming-handler`.
"""

import sys

from wasikv_sdk import key_value, watch
from wasikv_sdk.spin import http as spin_http
from wasikv_sdk.wit import exports
from wasikv_sdk.wit.exports import http
from wasikv_sdk.wit.imports import wasi_keyvalue_store as store


def ratio(n: int) -> int:
    return 10 // n


class Run(exports.Run):
    def run(self) -> None:
        print("before", flush=True)
        if sys.argv[1:] == ["err"]:
            store.open("no-such-label")
        ratio(0)


class Http(exports.Http):
    def handle_request(self, request: http.Request) -> http.Response:
        ratio(0)
        return http.Response(200, [], b"")


class Watcher(watch.Watcher):
    def on_set(self, bucket: key_value.Bucket, key: str, value: bytes) -> None:
        ratio(0)


class IncomingHandler(spin_http.IncomingHandler):
    def handle_request(self, request: spin_http.Request) -> spin_http.Response:
        return spin_http.Response(404, {}, b"")
