# A Spin HTTP app for spin-sdk 3.x: POST counts with wasi:keyvalue atomics,
# GET reads the count through the key-value Store, DELETE resets it,
# /open/LABEL reports what opening the store LABEL gives, and /relay fetches
# the URL in its `upstream_url` variable and relays what came back, with the
# upstream's headers.
from wasikv_sdk.spin import http, key_value, variables
from wasikv_sdk.spin.http import Request, Response, send
from wasikv_sdk.spin.wit.imports import atomics, wasi_keyvalue_store
from wasikv_sdk.spin.wit.imports.key_value import Error_AccessDenied, Error_NoSuchStore
from wasikv_sdk.spin.wit.types import Err


def text(status: int, body: str) -> Response:
    return Response(status, {"content-type": "text/plain"}, bytes(body + "\n", "utf-8"))


class IncomingHandler(http.IncomingHandler):
    def handle_request(self, request: Request) -> Response:
        if request.uri == "/relay":
            upstream = send(Request("GET", variables.get("upstream_url"), {}, None))
            relayed = {k: v for k, v in upstream.headers.items() if k != "content-length"}
            return Response(
                200,
                {**relayed, "content-type": "text/plain"},
                bytes(f"upstream said {upstream.status}: ", "utf-8") + (upstream.body or b""),
            )
        if request.uri.startswith("/open/"):
            try:
                with key_value.open(request.uri[len("/open/") :]) as store:
                    return text(200, "opened, exists: " + str(store.exists("hits")))
            except Err as e:
                if isinstance(e.value, Error_NoSuchStore):
                    return text(404, "no such store")
                if isinstance(e.value, Error_AccessDenied):
                    return text(403, "access denied")
                raise
        if request.method == "POST":
            with wasi_keyvalue_store.open("default") as bucket:
                count = atomics.increment(bucket, "hits", 1)
            return text(200, str(count))
        with key_value.open_default() as store:
            if request.method == "DELETE":
                store.delete("hits")
                return text(200, "reset")
            count = int(store.get("hits") or b"0")
            return text(200, f"{count} {store.get_keys()}")
