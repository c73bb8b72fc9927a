"""`wasikv up` and the embedded ASGI app: serving an app's components.

- `asgi`: `create_app` and `WasikvApp`, the ASGI app that routes to components;
- `serve`: the HTTP front (uvicorn) and its limits;
- `processes`: several server processes on one socket, and their supervision.

The worker threads guests run on are `wasikv.runtime.workers` (the watch
triggers use them too) and the Prometheus metrics `wasikv.metrics` (a `Host`
counts its store calls with them): both are imported by modules this package
imports, so here they would make import loops.
"""
