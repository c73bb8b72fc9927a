"""A Python service (Starlette) that mounts Wasm components next to its own routes.

Run it with `uvicorn service:app` from this directory after building the
http-counter example (`wasikv build -f ../http-counter`).
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from wasikv import create_app

MANIFEST = Path(os.environ.get("WASIKV_MANIFEST", Path(__file__).parent / "wasikv.toml"))

wasm = create_app(MANIFEST)


async def status(request: Request) -> JSONResponse:
    """A native Python route reading the same store the components write."""
    count = int(wasm.host.bucket("default").get("counter") or b"0")
    return JSONResponse({"service": "ok", "counter": count})


@asynccontextmanager
async def lifespan(_app: Starlette) -> AsyncIterator[None]:
    yield
    wasm.close()  # mounted apps get no lifespan events of their own


app = Starlette(routes=[Route("/status", status), Mount("/wasm", app=wasm)], lifespan=lifespan)
