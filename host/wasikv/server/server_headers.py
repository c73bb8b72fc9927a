"""The `date` and `server` headers of `wasikv up`'s responses: the guest's own, else the server's.

uvicorn puts its `date` and `server: uvicorn` before the app's headers in
every response, so a guest relaying an upstream's response (Spin's
outgoing-request example) sent two of each. `wasmtime serve` (hyper) adds a
`date` only to a response without one and no `server` at all, and Spin
passes a guest's own through too: a guest's headers win. `wasikv up` turns
uvicorn's off and wraps the app in `ServerHeaders`, which adds each of the
two only to a response that has none.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from email.utils import formatdate
from typing import Any

__all__ = ["SERVER", "ServerHeaders", "http_date"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The `server` header added to a response without one (what uvicorn said before).
SERVER = b"uvicorn"

_date_cache: tuple[int, bytes] = (-1, b"")


def http_date() -> bytes:
    """Now as an HTTP date (`Sat, 05 Dec 2026 11:00:00 GMT`), formatted once a second."""
    global _date_cache
    second = int(time.time())
    if _date_cache[0] != second:
        _date_cache = (second, formatdate(second, usegmt=True).encode("ascii"))
    return _date_cache[1]


class ServerHeaders:
    """An ASGI app's responses with a `date` and a `server` header added when they have none."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_defaults(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                names = {name.lower() for name, _ in headers}
                added = [(b"date", http_date())] if b"date" not in names else []
                if b"server" not in names:
                    added.append((b"server", SERVER))
                if added:
                    message = {**message, "headers": added + headers}
            await send(message)

        await self.app(scope, receive, send_with_defaults)
