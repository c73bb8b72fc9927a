"""The raising guest as a raw `wasi:http/incoming-handler` (built for wasikv:app/wasi-proxy)."""

from typing import Any


def ratio(n: int) -> int:
    return 10 // n


class IncomingHandler:
    def handle(self, request: Any, response_out: Any) -> None:
        ratio(0)
