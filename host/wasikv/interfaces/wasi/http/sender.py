"""`ClientSender`: a guest's `wasi:http/outgoing-handler` requests, sent by wasikv's `HttpClient`.

One `ClientSender` per instance, holding the component's `AllowedHosts`;
one `HttpClient` per `Host`, shared by all of them. `send` gives the client
the request (the client checks the policy before it resolves a name or
opens a connection: a denied request makes `handle` itself fail with
`HTTP-request-denied`), then moves bytes between the two sides' buffers:

- request body: the guest's `OutgoingBodySink` -> the client's `BodyPipe`;
- response body: the client's `BodyPipe` -> the guest's `IncomingBodySource`.

Each move runs on whichever thread changed something (the guest's, when it
writes or reads; the client's loop, when it sends or receives), never
blocks, and never takes more than the other side has room for: both
sides stay bounded, so the guest's waits and the server's TCP window give
the backpressure. A guest waiting for either side waits in its instance,
which its deadline interrupts.

An instance has at most `MAX_IN_FLIGHT` requests under way (sent, and
their response not yet read to its end or dropped): a guest that starts
more gets `internal-error` for each extra one it may send (one it may not
is `HTTP-request-denied` as ever), so one instance cannot hold thousands of
connections.

Not sent: requests to the app itself (a relative URL, `self`, Spin's
service chaining); `handle` fails them with `HTTP-request-URI-invalid`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ....allowed_hosts import AllowedHosts
from ....runtime.codec import Case
from .. import http_client as client
from ..io import IoError, StreamClosed
from ..state import WasiInstance
from .bodies import IncomingBodySource, OutgoingBodySink
from .outbound import OutboundRequest, PendingResponse, Timeouts

__all__ = ["MAX_IN_FLIGHT", "ClientSender"]

#: Requests one instance may have under way at once.
MAX_IN_FLIGHT = 100


class ClientSender:
    """An `OutboundSender` sending through `http` what `allowed` lets the component reach."""

    def __init__(self, http: client.HttpClient, allowed: AllowedHosts) -> None:
        self.http = http
        self.allowed = allowed
        self._live: list[_Exchange] = []

    def send(self, request: OutboundRequest, response: PendingResponse) -> Case | None:
        """Start `request`; `HTTP-request-denied` (and the like) when it may not go anywhere."""
        self._live = [exchange for exchange in self._live if not exchange.over]
        if len(self._live) >= MAX_IN_FLIGHT and self._allowed(request):
            return Case(
                "internal-error",
                f"{MAX_IN_FLIGHT} outbound requests are under way; read or drop their responses first",
            )
        exchange = _Exchange(request, response, self.http.limits.buffer)
        refused = exchange.start(self.http, self.allowed)
        if refused is None:
            self._live.append(exchange)
        return refused

    def _allowed(self, request: OutboundRequest) -> bool:
        # A request the policy refuses is told so, whatever else is under way.
        outbound = client.OutboundRequest(
            request.method, request.scheme, request.authority, request.path_with_query, request.headers, None
        )
        return client.HttpClient.refusal(outbound, self.allowed) is None


def _case(error: client.ClientError) -> Case:
    return Case(error.case, error.payload)


def _timeouts(timeouts: Timeouts) -> client.Timeouts:
    def pick(value: float | None) -> float:
        return client.DEFAULT_TIMEOUT if value is None else value

    return client.Timeouts(pick(timeouts.connect), pick(timeouts.first_byte), pick(timeouts.between_bytes))


class _Serial:
    """Calls `step` on whichever thread asks, never on two at once.

    Asked while it runs (from another thread, or from within `step`
    itself, through a callback), it runs `step` once more afterwards
    instead of waiting: no thread ever blocks here, so no lock order can
    deadlock with the buffers' own.
    """

    def __init__(self, step: Callable[[], None]) -> None:
        self._step = step
        self._lock = threading.Lock()
        self._running = False
        self._again = False

    def __call__(self) -> None:
        with self._lock:
            if self._running:
                self._again = True
                return
            self._running = True
        try:
            while True:
                self._step()
                with self._lock:
                    if not self._again:
                        return
                    self._again = False
        finally:
            with self._lock:
                self._running = self._again = False


class _ResponseSource(IncomingBodySource):
    """The guest's response body; tells the exchange when the guest dropped it."""

    def __init__(self, instance: WasiInstance, capacity: int, changed: Callable[[], None]) -> None:
        super().__init__(instance, capacity, on_space=changed)
        self._changed = changed

    def close(self) -> None:
        super().close()
        self._changed()


class _Exchange:
    """One request: its guest-side buffers, the client's exchange, and the moves between them."""

    def __init__(self, request: OutboundRequest, response: PendingResponse, buffer: int) -> None:
        self.request = request
        self.response = response
        self.instance = response.instance
        self.sink: OutgoingBodySink = request.body
        self.buffer = buffer
        self.move_request = _Serial(self._move_request)
        self.move_response = _Serial(self._move_response)
        self.body = client.BodyPipe(buffer, wake=self.move_request)
        self.exchange: client.Exchange | None = None
        self.source: _ResponseSource | None = None
        self._settled = False
        self._ended = False

    def start(self, http: client.HttpClient, allowed: AllowedHosts) -> Case | None:
        request = self.request
        self.sink.on_data = self.move_request
        # A body the guest finished before `handle` goes whole, with a Content-Length.
        self.move_request()
        outbound = client.OutboundRequest(
            request.method,
            request.scheme,
            request.authority,
            request.path_with_query,
            request.headers,
            self.body,
        )
        exchange = http.send(outbound, allowed, timeouts=_timeouts(request.timeouts), wake=self.move_response)
        result = exchange.result
        if not exchange.sent and isinstance(result, client.ClientError):
            # Refused before anything was opened (denied, an invalid URL): `handle` fails.
            self.sink.on_data = None
            return _case(result)
        self.exchange = exchange
        self.response.on_cancel = exchange.cancel
        self.move_response()
        return None

    @property
    def over(self) -> bool:
        """Whether the client is done with it (failed, or its whole response handed over or dropped)."""
        exchange = self.exchange
        if exchange is None:
            return True
        result = exchange.result
        if result is None:
            return False
        if isinstance(result, client.ClientError):
            return True
        return exchange.body.finished or exchange.body.reader_closed

    # -- guest -> client

    def _move_request(self) -> None:
        sink, body = self.sink, self.body
        if body.reader_closed:
            error = body.reader_error
            if error is not None:
                # The request failed: the guest's further writes fail with why.
                sink.fail(IoError(str(error), http_error=_case(error)))
                return
            # Answered before the guest finished writing (a GET whose empty body it
            # closes after `handle`, as componentize-py's and Spin's `send` do): what it
            # still writes is taken and dropped, as wasmtime's client lets it finish.
            while sink.take_nowait(1 << 20):
                pass
            return
        while (room := body.space()) > 0:
            data = sink.take_nowait(room)
            if data is None:
                return
            if not data:
                if sink.outcome == "finished":
                    body.finish(sink.trailers)
                elif sink.outcome == "aborted":
                    code = sink.error
                    body.finish(
                        error=client.ClientError(code.name, code.payload)
                        if code is not None
                        else client.ClientError("internal-error", "the guest dropped the body unfinished")
                    )
                return
            if not body.write(data):
                return

    # -- client -> guest

    def _move_response(self) -> None:
        exchange = self.exchange
        if exchange is None:
            return
        if not self._settled:
            result = exchange.result
            if result is None:
                return
            self._settled = True
            if isinstance(result, client.ClientError):
                self.response.fail(_case(result))
                return
            self.source = _ResponseSource(self.instance, self.buffer, self.move_response)
            self.response.resolve(result.status, result.headers, self.source)
        source, body = self.source, exchange.body
        if source is None or self._ended:
            return
        if source.closed:
            # The guest dropped the response or its body: stop reading the network.
            self._ended = True
            exchange.cancel()
            return
        while (room := source.free) > 0:
            data = body.read(room)
            if data is None:
                self._ended = True
                if body.error is not None:
                    source.fail_with(_case(body.error))
                else:
                    source.finish(body.trailers)
                return
            if not data:
                return
            try:
                source.offer(data)
            except StreamClosed:  # the guest dropped it meanwhile
                self._ended = True
                exchange.cancel()
                return
