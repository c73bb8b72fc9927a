"""The server's own answers (404, 408, 503, 504, ...), the same wherever a request is refused."""

from __future__ import annotations

from collections.abc import Iterable

from ..triggers.http_component import HttpResponse

#: The `Retry-After` of a 503 from a full queue, in seconds.
RETRY_AFTER = 1


def plain(status: int, text: str, headers: Iterable[tuple[str, str]] = ()) -> HttpResponse:
    """A short text answer of the server's own."""
    return HttpResponse(status, [("content-type", "text/plain"), *headers], f"{text}\n".encode())


def overloaded() -> HttpResponse:
    """503 with `Retry-After`: no worker (or queue place) is free."""
    return plain(503, "Service Unavailable", [("retry-after", str(RETRY_AFTER))])


__all__ = ["RETRY_AFTER", "overloaded", "plain"]
