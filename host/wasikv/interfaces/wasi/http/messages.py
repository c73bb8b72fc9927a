"""The messages of a served request: `incoming-request`, `outgoing-response`, `response-outparam`.

The server builds an `IncomingRequest` and a `ResponseOutparam` per call to
`wasi:http/incoming-handler.handle`:

    source = IncomingBodySource(instance, on_space=...)   # fed with the client's body
    request = IncomingRequest(instance, method="POST", path_with_query="/a?b",
                              scheme="http", authority="example.com", headers=pairs, body=source)
    outparam = ResponseOutparam(instance, on_set=answer)  # answer(ResponseHead | error-code Case)

`on_set` is called on the guest's thread as soon as the guest sets the
response (it must not block): with a `ResponseHead` (status, headers and the
`OutgoingBodySink` to stream the body from while the guest writes it), or
with the `error-code` the guest gave instead. A guest that returns without
setting leaves `outparam.response` None.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ....runtime._capi import GuestFault
from ....runtime.codec import Case, Err, Ok
from ..io import HostResource
from ..state import WasiInstance
from ._calls import method_body
from .bodies import IncomingBody, IncomingBodySource, OutgoingBody, OutgoingBodySink
from .errors import method_case, scheme_case
from .fields import Fields

__all__ = [
    "BODIES",
    "IncomingRequest",
    "OutgoingResponse",
    "ResponseHead",
    "ResponseOutparam",
    "content_length",
]


def content_length(headers: Fields) -> int | Err | None:
    """The Content-Length `headers` declare (their first one, as wasmtime reads it); `Err()` if unreadable."""
    values = headers.get("content-length")
    if not values:
        return None
    value = values[0]
    return int(value) if value.isdigit() else Err()


class IncomingRequest(HostResource):
    """`incoming-request`: a request the server received, for the guest to handle.

    `method` is the request's method as sent ("GET"; any other spelling is
    `other`), `scheme` "http" or "https" (any other is `other`), `authority`
    the request target's authority or the Host header's value. `headers`
    (pairs with str or bytes names) lose the names guests may not see
    (`host`, `connection`...), as wasmtime drops them. `body` is the source
    the server feeds (None: an empty body).
    """

    resource_name = "incoming-request"

    def __init__(
        self,
        instance: WasiInstance,
        *,
        method: str,
        path_with_query: str | None,
        scheme: str | None,
        authority: str | None,
        headers: Iterable[tuple[str | bytes, bytes]],
        body: IncomingBodySource | None = None,
    ) -> None:
        super().__init__()
        self.instance = instance
        self._method = method_case(method)
        self._path_with_query = path_with_query
        self._scheme = scheme_case(scheme) if scheme is not None else None
        self._authority = authority
        self._headers = Fields.received(headers)
        self.source = body if body is not None else IncomingBodySource.complete(instance)
        self._consumed = False

    def method(self) -> Case:
        """`method`."""
        return self._method

    def path_with_query(self) -> str | None:
        """`path-with-query`."""
        return self._path_with_query

    def scheme(self) -> Case | None:
        """`scheme`."""
        return self._scheme

    def authority(self) -> str | None:
        """`authority`."""
        return self._authority

    def headers(self) -> Fields:
        """`headers`: immutable."""
        return self._headers.view()

    def consume(self) -> Ok | Err:
        """`consume`: the body, once; `err` after."""
        if self._consumed:
            return Err()
        self._consumed = True
        return Ok(IncomingBody(self.instance, self.source))

    def on_release(self) -> None:
        if not self._consumed:
            self.source.close()


class OutgoingResponse(HostResource):
    """`outgoing-response`: the response a guest builds; its headers are frozen when given."""

    resource_name = "outgoing-response"

    def __init__(self, instance: WasiInstance, headers: Fields) -> None:
        super().__init__()
        headers.release()
        headers.freeze()
        self.instance = instance
        self._headers = headers
        self._status = 200
        self._sink: OutgoingBodySink | None = None
        self._sending = False

    def status_code(self) -> int:
        """`status-code`."""
        return self._status

    def set_status_code(self, status: int) -> Ok | Err:
        """`set-status-code`: `err` unless 100 to 999 (what the `http` crate accepts)."""
        if not 100 <= status <= 999:
            return Err()
        self._status = status
        return Ok()

    def headers(self) -> Fields:
        """`headers`: immutable."""
        return self._headers.view()

    def body(self) -> Ok | Err:
        """`body`: its `outgoing-body`, once; `err` after, or when its Content-Length is unreadable."""
        if self._sink is not None:
            return Err()
        expected = content_length(self._headers)
        if isinstance(expected, Err):
            return expected
        self._sink = OutgoingBodySink(self.instance, request=False, expected=expected)
        return Ok(OutgoingBody(self.instance, self._sink))

    def send(self) -> ResponseHead:
        """The response as the server sends it (it was given to `response-outparam.set`)."""
        self._sending = True
        try:
            self.release()
        finally:
            self._sending = False
        sink = self._sink or OutgoingBodySink.empty(self.instance, request=False)
        return ResponseHead(self._status, self._headers.pairs(), sink)

    def on_release(self) -> None:
        if not self._sending and self._sink is not None:
            # Dropped unsent: nobody will read what the guest writes.
            self._sink.close()


@dataclass(frozen=True)
class ResponseHead:
    """What the guest answered: status, headers (grouped by name, lower-case) and the body to stream."""

    status: int
    headers: list[tuple[str, bytes]]
    body: OutgoingBodySink


class ResponseOutparam(HostResource):
    """`response-outparam`: where the guest puts its response; `on_set` tells the server at once."""

    resource_name = "response-outparam"

    def __init__(
        self,
        instance: WasiInstance,
        on_set: Callable[[ResponseHead | Case], None] | None = None,
    ) -> None:
        super().__init__()
        self.instance = instance
        self.on_set = on_set
        #: The `ResponseHead`, or the guest's `error-code`, once set.
        self.response: ResponseHead | Case | None = None

    def set(self, response: Ok | Err) -> None:
        """`set`: record the response (or error) and tell `on_set`; a second call traps."""
        if self.response is not None:
            raise GuestFault("response-outparam.set: the response was already set")
        self.release()
        if isinstance(response, Ok):
            outgoing: OutgoingResponse = response.value
            self.response = outgoing.send()
        else:
            self.response = response.value if isinstance(response.value, Case) else Case(response.value)
        if self.on_set is not None:
            self.on_set(self.response)

    @property
    def dropped(self) -> bool:
        """Whether the guest dropped it without setting a response."""
        return self.released and self.response is None


def _outparam_set(instance: WasiInstance, param: ResponseOutparam, response: Ok | Err) -> None:
    param.set(response)


_TYPES = "wasi:http/types"
BODIES: dict[tuple[str, str], Callable[..., Any]] = {
    (_TYPES, "[method]incoming-request.method"): method_body("method"),
    (_TYPES, "[method]incoming-request.path-with-query"): method_body("path_with_query"),
    (_TYPES, "[method]incoming-request.scheme"): method_body("scheme"),
    (_TYPES, "[method]incoming-request.authority"): method_body("authority"),
    (_TYPES, "[method]incoming-request.headers"): method_body("headers"),
    (_TYPES, "[method]incoming-request.consume"): method_body("consume"),
    (_TYPES, "[constructor]outgoing-response"): OutgoingResponse,
    (_TYPES, "[method]outgoing-response.status-code"): method_body("status_code"),
    (_TYPES, "[method]outgoing-response.set-status-code"): method_body("set_status_code"),
    (_TYPES, "[method]outgoing-response.headers"): method_body("headers"),
    (_TYPES, "[method]outgoing-response.body"): method_body("body"),
    (_TYPES, "[static]response-outparam.set"): _outparam_set,
}
