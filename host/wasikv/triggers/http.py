"""The HTTP trigger: calling a component's `wasikv:app/http` export.

Every request gets a fresh instance, so no state leaks between requests.
The request and response records are converted with wasikv's own codec, so
bodies cross the boundary in bulk rather than one byte at a time.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial

from wasmtime import Store
from wasmtime.component import Component, Instance

from .. import _canonical as cv
from ..errors import ComponentError
from ..host import Host
from ._exports import call_export, export_func

log = logging.getLogger("wasikv")

HTTP_INTERFACE = "wasikv:app/http@0.1.0"


@dataclass(frozen=True)
class HttpRequest:
    """A request as the guest sees it."""

    method: str
    uri: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


@dataclass(frozen=True)
class HttpResponse:
    """A response as the guest returned it."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


class BadResponse(ComponentError):
    """The component returned a response that is not valid HTTP."""


class HttpComponent:
    """A component that serves HTTP requests, one fresh instance per request."""

    def __init__(
        self,
        host: Host,
        component: Component,
        *,
        name: str = "app",
        grants: Iterable[str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.host = host
        self.component = component
        self.name = name
        self.grants = None if grants is None else frozenset(grants)
        self.env = dict(env or {})

    def handle(self, request: HttpRequest) -> HttpResponse:
        """Serve one request. Raises `GuestTrap` or `BadResponse` on failure."""
        stderr = io.BytesIO()
        try:
            with self.host.instantiate(
                self.component, argv=[self.name], env=self.env, grants=self.grants, stderr=stderr
            ) as (store, instance):
                return _call_handle_request(store, instance, request)
        finally:
            output = stderr.getvalue()
            if output:
                for line in output.decode("utf-8", "replace").rstrip().splitlines():
                    log.warning("[%s] %s", self.name, line)


def _put_request(addr: int, request: HttpRequest) -> None:
    cv.put_record(
        addr,
        [
            ("method", partial(cv.put_string, value=request.method)),
            ("uri", partial(cv.put_string, value=request.uri)),
            (
                "headers",
                lambda a: cv.put_list(a, [partial(cv.put_string_pair, pair=h) for h in request.headers]),
            ),
            ("body", partial(cv.put_bytes, value=request.body)),
        ],
    )


def _call_handle_request(store: Store, instance: Instance, request: HttpRequest) -> HttpResponse:
    func = export_func(store, instance, HTTP_INTERFACE, "handle-request", "wasikv:app/http-trigger")
    response = call_export(store, func, [partial(_put_request, request=request)], _read_response)
    assert response is not None
    _validate(response)
    return response


def _read_response(addr: int) -> HttpResponse:
    fields = cv.read_record(addr)
    return HttpResponse(
        status=cv.read_u16(fields["status"]),
        headers=cv.read_string_pairs(fields["headers"]),
        body=cv.read_bytes(fields["body"]),
    )


def _validate(response: HttpResponse) -> None:
    if not 100 <= response.status <= 599:
        raise BadResponse(f"status {response.status} is not a valid HTTP status")
    for name, value in response.headers:
        if not name or any(c in name for c in " \t\r\n:") or "\r" in value or "\n" in value:
            raise BadResponse(f"invalid response header {name!r}: {value[:64]!r}")
