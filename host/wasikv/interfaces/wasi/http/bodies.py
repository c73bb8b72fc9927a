"""HTTP bodies: `incoming-body` and `future-trailers`, `outgoing-body`, and their host ends.

Incoming: the host (the server for a request, the client for a response)
fills an `IncomingBodySource` (a bounded queue: it waits while the guest
has not read) and ends it with `finish(trailers)` or `fail_with(code)`. The guest
reads it through the body's one `input-stream`, then `finish`es the body
into `future-trailers`, which drains what the guest left unread, as
wasmtime does, and gives the trailers.

Outgoing: the guest writes through the body's one `output-stream` into an
`OutgoingBodySink` (a bounded queue the host drains: the guest waits while
it is full), then `finish`es the body (the host reads `outcome` "finished"
and the trailers) or drops it (`outcome` "aborted": the host must not
complete the message). A Content-Length the message declared is enforced
as wasmtime does: a write past it fails with `HTTP-*-body-size`, and a
finish short of it (or past it) fails with that code and aborts the body.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal

from ....runtime.codec import Case, Err, Ok
from ..io import HostResource, InputStream, IoError, OutputStream, Pollable, StreamClosed, StreamFailed
from ..pipes import DEFAULT_CAPACITY, BufferedSink, BufferedSource
from ..state import WasiInstance
from ._calls import method_body
from .errors import body_size_error, describe_error_code, internal_error
from .fields import Fields

__all__ = [
    "BODIES",
    "FutureTrailers",
    "IncomingBody",
    "IncomingBodySource",
    "OutgoingBody",
    "OutgoingBodySink",
]

Pairs = Iterable[tuple[str | bytes, bytes]]
# How much unread body `future-trailers` discards per look.
_DRAIN_CHUNK = 1 << 20


class IncomingBodySource(BufferedSource):
    """The bytes and trailers of a message the guest receives, as the host feeds them.

    Producer side (any thread): `offer`/`feed` bytes (bounded by
    `capacity`: `feed` waits while the guest has not read, `offer` takes
    what fits and `on_space` says when to offer more), then `finish(trailers)`
    or `fail_with(code)`. `closed` turns true when nobody will read any more (the
    guest dropped the body, or the host called `close`): stop reading the
    network then.
    """

    def __init__(
        self,
        instance: WasiInstance,
        capacity: int = DEFAULT_CAPACITY,
        *,
        on_space: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(instance, capacity, on_space=on_space)
        self._trailers: Fields | None = None

    @classmethod
    def complete(
        cls, instance: WasiInstance, data: bytes = b"", trailers: Pairs | None = None
    ) -> IncomingBodySource:
        """A source holding all of a body already received, and ended."""
        source = cls(instance, max(len(data), 1))
        source.offer(data)
        source.finish(trailers)
        return source

    def finish(self, trailers: Pairs | None = None) -> None:
        """The body ended, with these trailers (None: the message had none)."""
        if trailers is not None:
            self._trailers = Fields.received(trailers)
        super().finish()

    def fail_with(self, code: Case, message: str | None = None) -> None:
        """The body broke off with `code` (an `error-code`): the guest's read fails with it."""
        self.fail(IoError(message or describe_error_code(code), http_error=code))

    @property
    def trailers(self) -> Fields | None:
        """The trailers `finish` was given."""
        return self._trailers


class IncomingBody(HostResource):
    """`incoming-body`: the body of an `incoming-request` or `incoming-response`."""

    resource_name = "incoming-body"

    def __init__(self, instance: WasiInstance, source: IncomingBodySource) -> None:
        super().__init__()
        self.instance = instance
        self.source = source
        self._streamed = False
        self._finishing = False

    def stream(self) -> Ok | Err:
        """`stream`: its `input-stream` (a child), once; `err` after."""
        if self._streamed:
            return Err()
        self._streamed = True
        return Ok(InputStream(self.instance, self.source, parent=self))

    def finish(self) -> FutureTrailers:
        """`finish` (the body was given back): its `future-trailers`; traps while its stream is alive."""
        self._finishing = True
        try:
            self.release()
        finally:
            self._finishing = False
        return FutureTrailers(self.instance, self.source)

    def on_release(self) -> None:
        if not self._finishing:
            # Dropped: nobody reads the rest; the host may stop receiving it.
            self.source.close()

    def on_instance_closed(self) -> None:
        """The instance ended holding it: nobody reads the rest."""
        self.source.close()


class FutureTrailers(HostResource):
    """`future-trailers`: ready once the body has ended; what remains unread is discarded."""

    resource_name = "future-trailers"

    def __init__(self, instance: WasiInstance, source: IncomingBodySource) -> None:
        super().__init__()
        self.instance = instance
        self.source = source
        self._outcome: Ok | Err | None = None
        self._taken = False

    def _ready(self) -> bool:
        """Whether the body has ended (reading and dropping what the guest left unread)."""
        if self._outcome is not None:
            return True
        try:
            while self.source.read(_DRAIN_CHUNK):
                pass
            return False
        except StreamClosed:
            trailers = self.source.trailers
            self._outcome = Ok(trailers.view() if trailers is not None else None)
        except StreamFailed as failure:
            error = failure.error
            self._outcome = Err(error.http_error or internal_error(error.message))
        return True

    def subscribe(self) -> Pollable:
        """`subscribe`: a child pollable, ready when `get` would give `some`."""
        return Pollable(self.instance, self._ready, parent=self)

    def get(self) -> Ok | Err | None:
        """`get`: None while pending; then `ok(ok(trailers?))` or `ok(err(code))` once, `err` after."""
        if self._taken:
            return Err()
        if not self._ready():
            return None
        self._taken = True
        return Ok(self._outcome)

    def on_release(self) -> None:
        if self._outcome is None:
            self.source.close()

    def on_instance_closed(self) -> None:
        """The instance ended holding it: nobody reads the rest."""
        if self._outcome is None:
            self.source.close()


Outcome = Literal["finished", "aborted"]


class OutgoingBodySink(BufferedSink):
    """Where the guest's `outgoing-body` bytes go, and how the body ended, for the host to read.

    Consumer side (the server for a response, the client for a request):
    `take`/`take_nowait` (b"" after the last byte), `on_data` (called when
    bytes or the end arrive: set it, then take once, since bytes may have
    come before), `outcome` (None while the guest may write, then
    "finished" or "aborted"), `trailers` (with "finished"), `error` (why
    it was aborted, when an `error-code` says it), and `close()` when the
    consumer is gone (the guest's writes then fail with `closed`).
    `expected` is the Content-Length the message declared.
    """

    def __init__(
        self,
        instance: WasiInstance,
        capacity: int = DEFAULT_CAPACITY,
        *,
        request: bool,
        expected: int | None = None,
        on_data: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(instance, capacity, on_data=on_data)
        self.request = request
        self.expected = expected
        #: The bytes the guest wrote, those refused past `expected` included.
        self.written = 0
        self.outcome: Outcome | None = None
        self.trailers: list[tuple[str, bytes]] | None = None
        self.error: Case | None = None

    @classmethod
    def empty(cls, instance: WasiInstance, *, request: bool) -> OutgoingBodySink:
        """The body of a message whose guest never asked for one: no bytes, finished."""
        sink = cls(instance, 1, request=request)
        sink.end("finished")
        return sink

    def write(self, data: bytes) -> None:
        """`ByteSink.write`, refusing bytes past the declared Content-Length (as wasmtime does)."""
        total = self.written + len(data)
        if self.expected is not None and total > self.expected:
            self.written = total
            code = body_size_error(request=self.request, size=total)
            raise StreamFailed(
                IoError(f"body longer than its content-length {self.expected}", http_error=code)
            )
        super().write(data)
        self.written = total

    def end(self, outcome: Outcome, trailers: Fields | None = None, error: Case | None = None) -> None:
        """The guest is done: `outcome` (with trailers or why), after the bytes queued."""
        if self.outcome is not None:
            return
        self.outcome = outcome
        self.trailers = trailers.pairs() if trailers is not None else None
        self.error = error
        self.finish()


class OutgoingBody(HostResource):
    """`outgoing-body`: the body of an `outgoing-response` or `outgoing-request`."""

    resource_name = "outgoing-body"

    def __init__(self, instance: WasiInstance, sink: OutgoingBodySink) -> None:
        super().__init__()
        self.instance = instance
        self.sink = sink
        self._written = False
        self._finishing = False

    def write(self) -> Ok | Err:
        """`write`: its `output-stream` (a child), once; `err` after."""
        if self._written:
            return Err()
        self._written = True
        return Ok(OutputStream(self.instance, self.sink, parent=self))

    def finish(self, trailers: Fields | None) -> Ok | Err:
        """`finish`: end the body; traps while its stream lives; `err` (and aborted) on a length mismatch."""
        self._finishing = True
        try:
            self.release()
        finally:
            self._finishing = False
        if trailers is not None:
            trailers.release()
        sink = self.sink
        if sink.expected is not None and sink.written != sink.expected:
            code = body_size_error(request=sink.request, size=sink.written)
            sink.end("aborted", error=code)
            return Err(code)
        sink.end("finished", trailers)
        return Ok()

    def on_release(self) -> None:
        if not self._finishing:
            # Dropped unfinished: the message must not look complete.
            self.sink.end("aborted")

    def on_instance_closed(self) -> None:
        """The instance ended without finishing it: the message must not look complete."""
        self.sink.end("aborted")


def _incoming_body_finish(instance: WasiInstance, body: IncomingBody) -> FutureTrailers:
    return body.finish()


def _outgoing_body_finish(instance: WasiInstance, body: OutgoingBody, trailers: Fields | None) -> Ok | Err:
    return body.finish(trailers)


def _http_error_code(instance: WasiInstance, error: IoError) -> Case | None:
    return error.http_error


_TYPES = "wasi:http/types"
BODIES: dict[tuple[str, str], Callable[..., Any]] = {
    (_TYPES, "[method]incoming-body.stream"): method_body("stream"),
    (_TYPES, "[static]incoming-body.finish"): _incoming_body_finish,
    (_TYPES, "[method]future-trailers.subscribe"): method_body("subscribe"),
    (_TYPES, "[method]future-trailers.get"): method_body("get"),
    (_TYPES, "[method]outgoing-body.write"): method_body("write"),
    (_TYPES, "[static]outgoing-body.finish"): _outgoing_body_finish,
    (_TYPES, "http-error-code"): _http_error_code,
}
