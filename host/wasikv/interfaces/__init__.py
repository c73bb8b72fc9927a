"""One module or package per WIT package wasikv implements for guests.

- `keyvalue`: wasi:keyvalue (store, atomics, batch; each draft's shape);
- `config`: wasi:config/store, the app's variables;
- `outbound_http`: wasi:http/outgoing-handler of components that may reach no
  host (every request denied); the others' requests go through `wasi` below;
- `wasi`: wasikv's own wasi:io and wasi:http (HTTP handlers, and requests sent
  by its HTTP client where `allowed_outbound_hosts` allows);
- `spin`: Spin's own `fermyon:spin/key-value` and `fermyon:spin/variables`
  (served by the key-value and variables capabilities);
- `unprovided`: every other Spin interface, linked as traps.
"""
