"""Outbound HTTP: `outgoing-request`, `request-options`, `future-incoming-response`,
`incoming-response`, and `wasi:http/outgoing-handler.handle`.

`handle` checks and completes the request as wasmtime does (method, scheme
defaulting to https, authority, path "/" when none, a Host header first),
then gives it to the instance's `OutboundSender` as an `OutboundRequest`.
The sender sends it (on a thread of its own, typically) and settles the
`PendingResponse` it was given: `resolve(status, headers, body_source)` or
`fail(error_code)`. Without a sender every request is `HTTP-request-denied`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from ....runtime.codec import Case, Err, Ok
from ..io import HostResource, Pollable
from ..state import WasiInstance
from ._calls import method_body
from .bodies import IncomingBody, IncomingBodySource, OutgoingBody, OutgoingBodySink
from .errors import authority_ok, method_name, path_with_query_ok, scheme_name
from .fields import Fields
from .messages import content_length

__all__ = [
    "BODIES",
    "DENIED",
    "FutureIncomingResponse",
    "IncomingResponse",
    "OutboundRequest",
    "OutboundSender",
    "OutgoingRequest",
    "PendingResponse",
    "RequestOptions",
    "Timeouts",
    "handle",
]

#: The `error-code` of a request nobody may send.
DENIED = Case("HTTP-request-denied")


class OutgoingRequest(HostResource):
    """`outgoing-request`: a request the guest builds; GET, no scheme, authority or path by default."""

    resource_name = "outgoing-request"

    def __init__(self, instance: WasiInstance, headers: Fields) -> None:
        super().__init__()
        headers.release()
        headers.freeze()
        self.instance = instance
        self._headers = headers
        self._method = Case("get")
        self._path_with_query: str | None = None
        self._scheme: Case | None = None
        self._authority: str | None = None
        self.sink: OutgoingBodySink | None = None
        self._sending = False

    def body(self) -> Ok | Err:
        """`body`: its `outgoing-body`, once; `err` after, or when its Content-Length is unreadable."""
        if self.sink is not None:
            return Err()
        expected = content_length(self._headers)
        if isinstance(expected, Err):
            return expected
        self.sink = OutgoingBodySink(self.instance, request=True, expected=expected)
        return Ok(OutgoingBody(self.instance, self.sink))

    def method(self) -> Case:
        """`method`."""
        return self._method

    def set_method(self, method: Case | str) -> Ok | Err:
        """`set-method`: `err` when `other` holds no valid method."""
        case = Case(method) if isinstance(method, str) else method
        if method_name(case) is None:
            return Err()
        self._method = case
        return Ok()

    def path_with_query(self) -> str | None:
        """`path-with-query`."""
        return self._path_with_query

    def set_path_with_query(self, path_with_query: str | None) -> Ok | Err:
        """`set-path-with-query`: `err` unless a valid path and query."""
        if path_with_query is not None and not path_with_query_ok(path_with_query):
            return Err()
        self._path_with_query = path_with_query
        return Ok()

    def scheme(self) -> Case | None:
        """`scheme`."""
        return self._scheme

    def set_scheme(self, scheme: Case | str | None) -> Ok | Err:
        """`set-scheme`: `err` when `other` holds no valid scheme."""
        case = Case(scheme) if isinstance(scheme, str) else scheme
        if case is not None and scheme_name(case) is None:
            return Err()
        self._scheme = case
        return Ok()

    def authority(self) -> str | None:
        """`authority`."""
        return self._authority

    def set_authority(self, authority: str | None) -> Ok | Err:
        """`set-authority`: `err` unless a valid authority."""
        if authority is not None and not authority_ok(authority):
            return Err()
        self._authority = authority
        return Ok()

    def headers(self) -> Fields:
        """`headers`: immutable."""
        return self._headers.view()

    def give(self) -> None:
        """The guest gave the request to `handle`: release its handle (its body stays the guest's)."""
        self._sending = True
        try:
            self.release()
        finally:
            self._sending = False

    def on_release(self) -> None:
        if not self._sending and self.sink is not None:
            self.sink.close()


class RequestOptions(HostResource):
    """`request-options`: three optional timeouts, in nanoseconds; every one is supported."""

    resource_name = "request-options"

    def __init__(self, instance: WasiInstance | None = None) -> None:
        super().__init__()
        self.connect_timeout_ns: int | None = None
        self.first_byte_timeout_ns: int | None = None
        self.between_bytes_timeout_ns: int | None = None

    def connect_timeout(self) -> int | None:
        """`connect-timeout`."""
        return self.connect_timeout_ns

    def set_connect_timeout(self, duration: int | None) -> Ok:
        """`set-connect-timeout`."""
        self.connect_timeout_ns = duration
        return Ok()

    def first_byte_timeout(self) -> int | None:
        """`first-byte-timeout`."""
        return self.first_byte_timeout_ns

    def set_first_byte_timeout(self, duration: int | None) -> Ok:
        """`set-first-byte-timeout`."""
        self.first_byte_timeout_ns = duration
        return Ok()

    def between_bytes_timeout(self) -> int | None:
        """`between-bytes-timeout`."""
        return self.between_bytes_timeout_ns

    def set_between_bytes_timeout(self, duration: int | None) -> Ok:
        """`set-between-bytes-timeout`."""
        self.between_bytes_timeout_ns = duration
        return Ok()


@dataclass(frozen=True)
class Timeouts:
    """A request's timeouts in seconds (None: the sender's own default)."""

    connect: float | None = None
    first_byte: float | None = None
    between_bytes: float | None = None


@dataclass(frozen=True)
class OutboundRequest:
    """A request `handle` accepted, for the sender to send.

    `headers` start with `host` (the authority), then the guest's, in
    order. `body` is the guest's `OutgoingBodySink`: take its bytes as the
    guest writes them, until `outcome` says "finished" (send `trailers`) or
    "aborted" (abandon the request); call its `close()` when the request
    failed, so the guest's writes fail.
    """

    method: str
    scheme: str
    authority: str
    path_with_query: str
    headers: list[tuple[str, bytes]]
    body: OutgoingBodySink
    timeouts: Timeouts


class PendingResponse:
    """How a sender settles the guest's `future-incoming-response`, from any thread."""

    def __init__(self, instance: WasiInstance) -> None:
        self.instance = instance
        self._lock = threading.Lock()
        self._outcome: Ok | Err | None = None
        #: Set when the guest dropped the future before it was settled: give up.
        self.cancelled = False
        #: Called (once, on the guest's thread) when `cancelled` turns true.
        self.on_cancel: Callable[[], None] | None = None

    def resolve(
        self, status: int, headers: Iterable[tuple[str | bytes, bytes]], body: IncomingBodySource
    ) -> None:
        """The response's head arrived: the guest gets an `incoming-response` whose body `body` carries.

        When the guest gave up already (`cancelled`), `body` is closed at once.
        """
        self._settle(Ok((status, Fields.received(headers), body)))
        if self.cancelled:
            body.close()

    def fail(self, code: Case) -> None:
        """The request failed with `code` (an `error-code`)."""
        self._settle(Err(code))

    @property
    def settled(self) -> bool:
        """Whether `resolve` or `fail` was called."""
        return self._outcome is not None

    def _settle(self, outcome: Ok | Err) -> None:
        with self._lock:
            if self._outcome is not None:
                raise ValueError("the response was already settled")
            self._outcome = outcome
        self.instance.wake()

    def _cancel(self) -> None:
        with self._lock:
            outcome = self._outcome
            self.cancelled = outcome is None
        if self.cancelled and self.on_cancel is not None:
            self.on_cancel()
        if isinstance(outcome, Ok):
            outcome.value[2].close()


class OutboundSender(Protocol):
    """What sends a guest's requests (wired by the host per instance)."""

    def send(self, request: OutboundRequest, response: PendingResponse) -> Case | None:
        """Start sending `request`; settle `response` later (or at once).

        Returns an `error-code` to make `handle` itself fail with (e.g.
        `HTTP-request-denied` for a host the app may not reach: nothing was
        sent), or None once the request is under way.
        """
        ...


class FutureIncomingResponse(HostResource):
    """`future-incoming-response`: the response to come, once."""

    resource_name = "future-incoming-response"

    def __init__(self, instance: WasiInstance, pending: PendingResponse) -> None:
        super().__init__()
        self.instance = instance
        self.pending = pending
        self._taken = False

    def _ready(self) -> bool:
        return self.pending.settled

    def subscribe(self) -> Pollable:
        """`subscribe`: a child pollable, ready when `get` would give `some`."""
        return Pollable(self.instance, self._ready, parent=self)

    def get(self) -> Ok | Err | None:
        """`get`: None while pending; `ok(ok(response))` or `ok(err(code))` once; `err` after."""
        if self._taken:
            return Err()
        outcome = self.pending._outcome
        if outcome is None:
            return None
        self._taken = True
        if isinstance(outcome, Err):
            return Ok(outcome)
        status, headers, body = outcome.value
        return Ok(Ok(IncomingResponse(self.instance, status, headers, body)))

    def on_release(self) -> None:
        if not self._taken:
            self.pending._cancel()

    def on_instance_closed(self) -> None:
        """The instance ended holding it: give the request up (its connection is closed)."""
        if not self.released and not self._taken:
            self.pending._cancel()


class IncomingResponse(HostResource):
    """`incoming-response`: the response to a guest's request."""

    resource_name = "incoming-response"

    def __init__(
        self, instance: WasiInstance, status: int, headers: Fields, source: IncomingBodySource
    ) -> None:
        super().__init__()
        self.instance = instance
        self._status = status
        self._headers = headers
        self.source = source
        self._consumed = False

    def status(self) -> int:
        """`status`."""
        return self._status

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

    def on_instance_closed(self) -> None:
        """The instance ended holding it: nobody reads the body (the client stops receiving it)."""
        self.source.close()


def _timeouts(options: RequestOptions | None) -> Timeouts:
    if options is None:
        return Timeouts()

    def seconds(ns: int | None) -> float | None:
        return None if ns is None else ns / 1e9

    return Timeouts(
        seconds(options.connect_timeout_ns),
        seconds(options.first_byte_timeout_ns),
        seconds(options.between_bytes_timeout_ns),
    )


def _checked(
    instance: WasiInstance, request: OutgoingRequest, options: RequestOptions | None
) -> OutboundRequest | Case:
    """The request as sent, or the `error-code` wasmtime's `handle` fails with."""
    method = method_name(request.method())
    if method is None:
        return Case("HTTP-request-method-invalid")
    chosen = request.scheme()
    scheme = "https" if chosen is None else scheme_name(chosen)
    if scheme not in ("http", "https"):
        return Case("HTTP-protocol-error")
    authority = request.authority()
    if not authority:
        return Case("HTTP-request-URI-invalid")
    path = request.path_with_query() or "/"
    headers = [("host", authority.encode("utf-8")), *request.headers().pairs()]
    body = request.sink or OutgoingBodySink.empty(instance, request=True)
    return OutboundRequest(method, scheme, authority, path, headers, body, _timeouts(options))


def handle(instance: WasiInstance, request: OutgoingRequest, options: RequestOptions | None) -> Ok | Err:
    """`wasi:http/outgoing-handler.handle`: check the request, then give it to the instance's sender."""
    request.give()
    if options is not None:
        options.release()
    outbound = _checked(instance, request, options)
    sender: OutboundSender | None = getattr(instance, "http_sender", None)
    if isinstance(outbound, OutboundRequest) and sender is None:
        outbound = DENIED
    if not isinstance(outbound, OutboundRequest):
        if request.sink is not None:
            request.sink.close()
        return Err(outbound)
    pending = PendingResponse(instance)
    refused = sender.send(outbound, pending) if sender is not None else DENIED
    if refused is not None:
        outbound.body.close()
        return Err(refused)
    return Ok(FutureIncomingResponse(instance, pending))


_TYPES = "wasi:http/types"
BODIES: dict[tuple[str, str], Callable[..., Any]] = {
    (_TYPES, "[constructor]outgoing-request"): OutgoingRequest,
    (_TYPES, "[method]outgoing-request.body"): method_body("body"),
    (_TYPES, "[method]outgoing-request.method"): method_body("method"),
    (_TYPES, "[method]outgoing-request.set-method"): method_body("set_method"),
    (_TYPES, "[method]outgoing-request.path-with-query"): method_body("path_with_query"),
    (_TYPES, "[method]outgoing-request.set-path-with-query"): method_body("set_path_with_query"),
    (_TYPES, "[method]outgoing-request.scheme"): method_body("scheme"),
    (_TYPES, "[method]outgoing-request.set-scheme"): method_body("set_scheme"),
    (_TYPES, "[method]outgoing-request.authority"): method_body("authority"),
    (_TYPES, "[method]outgoing-request.set-authority"): method_body("set_authority"),
    (_TYPES, "[method]outgoing-request.headers"): method_body("headers"),
    (_TYPES, "[constructor]request-options"): RequestOptions,
    (_TYPES, "[method]request-options.connect-timeout"): method_body("connect_timeout"),
    (_TYPES, "[method]request-options.set-connect-timeout"): method_body("set_connect_timeout"),
    (_TYPES, "[method]request-options.first-byte-timeout"): method_body("first_byte_timeout"),
    (_TYPES, "[method]request-options.set-first-byte-timeout"): method_body("set_first_byte_timeout"),
    (_TYPES, "[method]request-options.between-bytes-timeout"): method_body("between_bytes_timeout"),
    (_TYPES, "[method]request-options.set-between-bytes-timeout"): method_body("set_between_bytes_timeout"),
    (_TYPES, "[method]future-incoming-response.subscribe"): method_body("subscribe"),
    (_TYPES, "[method]future-incoming-response.get"): method_body("get"),
    (_TYPES, "[method]incoming-response.status"): method_body("status"),
    (_TYPES, "[method]incoming-response.headers"): method_body("headers"),
    (_TYPES, "[method]incoming-response.consume"): method_body("consume"),
    ("wasi:http/outgoing-handler", "handle"): handle,
}
