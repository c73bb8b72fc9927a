"""spin_sdk's module layout over wasikv, so a Spin Python app ports by its imports.

A Spin app written for spin-sdk 3.x runs on `wasikv up` once every
`spin_sdk` in its imports reads `wasikv_sdk.spin` and it is built for the
world `wasikv:app/spin-http`, or `wasikv:app/proxy` (a standard
`wasi:http/incoming-handler` component, which `spin up` serves too)::

    from wasikv_sdk.spin import http, key_value
    from wasikv_sdk.spin.http import Request, Response

    class IncomingHandler(http.IncomingHandler):
        def handle_request(self, request: Request) -> Response:
            with key_value.open_default() as store:
                store.set("last", request.uri.encode())
            return Response(200, {"content-type": "text/plain"}, b"ok")

Modules, named and shaped as spin_sdk's:

- `wasikv_sdk.spin.http`: `Request`, `Response`, `IncomingHandler`, `send`;
- `wasikv_sdk.spin.key_value`: `open`, `open_default`, `Store`, and the
  `Error_*` classes raised inside `componentize_py_types.Err`;
- `wasikv_sdk.spin.variables`: `get`;
- `wasikv_sdk.spin.wit.imports`: `wasi_keyvalue_store`, `atomics`, `batch`
  (wasikv's wasi:keyvalue bindings under spin_sdk's names) and `key_value`;
  `wasikv_sdk.spin.wit.types`: `Ok`, `Err`, `Some`.

Guest-only, like spin_sdk: these modules call the generated bindings.
"""
