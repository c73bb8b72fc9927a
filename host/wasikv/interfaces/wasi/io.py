"""`wasi:io` 0.2 (error, poll, streams) as Python host resources, as wasmtime-wasi behaves.

A stream is a guest-facing resource over a byte *source* or *sink* (the
`ByteSource` and `ByteSink` protocols; ready-made ones are in `pipes`): the
stream keeps the WIT's rules (permits, the 4096-byte limit of the blocking
convenience calls, a failure reported once and `closed` after it, children
that outlive their parent trap), the source or sink only moves bytes. Every
blocking call waits through `WasiInstance.wait`, so the instance's deadline,
an interruption or a host shutdown stops it; whatever makes a waiting call
able to proceed calls `WasiInstance.wake()`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Protocol

from ...runtime._capi import GuestFault
from ...runtime.codec import Case, Err, Ok
from .state import WasiInstance

__all__ = [
    "BLOCKING_WRITE_LIMIT",
    "BODIES",
    "CLOSED",
    "READ_LIMIT",
    "RESOURCES",
    "ByteSink",
    "ByteSource",
    "HostResource",
    "InputStream",
    "IoError",
    "OutputStream",
    "Pollable",
    "StreamClosed",
    "StreamFailed",
    "poll",
]

#: The most bytes one `read` or `skip` returns, whatever length the guest asks for: well
#: under what wasmtime lets one call copy (`HOSTCALL_BUDGET_BYTES`).
READ_LIMIT = 1 << 20
#: The most bytes `blocking-write-and-flush` (and zeroes) takes; wasmtime traps past it.
BLOCKING_WRITE_LIMIT = 4096
#: `stream-error.closed`, as a result.
CLOSED = Err(Case("closed"))
# wasmtime gives up a blocking call whose stream says ready but yields nothing this often.
_BLOCKING_ATTEMPTS = 10


class HostResource:
    """A Python host resource, with wasmtime's parent/child handle rule.

    A resource made from another (a `subscribe` pollable from its stream, a
    body's stream from its body) is its *child*: while it is alive, the
    parent's handle cannot go (wasmtime traps: "resource has children").
    `release` is that moment for a handle: the guest dropped it (`on_drop`),
    or passed it to the host as an `own<T>` argument (the host's body calls
    `release`). Subclasses react to it in `on_release`.
    """

    #: The WIT name of the resource, for trap messages.
    resource_name: ClassVar[str] = "resource"

    def __init__(self, parent: HostResource | None = None) -> None:
        self._parent = parent
        self._children = 0
        #: Whether the guest's handle is gone (dropped or given to the host).
        self.released = False
        if parent is not None:
            parent._children += 1

    @property
    def children(self) -> int:
        """How many resources made from this one are alive."""
        return self._children

    def release(self) -> None:
        """The guest's handle is gone: trap if children are alive, else detach from the parent.

        Raises `GuestFault` (the guest traps) while children are alive.
        Releasing twice does nothing.
        """
        if self.released:
            return
        if self._children:
            raise GuestFault(
                f"{self.resource_name} handle dropped while {self._children} resource(s) made from it"
                " are alive (resource has children)"
            )
        self.released = True
        if self._parent is not None:
            self._parent._children -= 1
            self._parent = None
        self.on_release()

    def on_drop(self) -> None:
        """The guest dropped its handle (called by the dispatcher)."""
        self.release()

    def on_release(self) -> None:
        """Called once when the handle is released; nothing by default."""


class IoError(HostResource):
    """`wasi:io/error.error`: why a stream operation failed.

    `http_error` is the `wasi:http/types.error-code` value (a `Case`) that
    `wasi:http/types.http-error-code` gives for it, when HTTP caused it.
    """

    resource_name = "error"

    def __init__(self, message: str, *, http_error: Case | None = None) -> None:
        super().__init__()
        self.message = message
        self.http_error = http_error

    def to_debug_string(self) -> str:
        """`to-debug-string`: the message, for humans."""
        return self.message

    def __repr__(self) -> str:
        return f"IoError({self.message!r}, http_error={self.http_error!r})"


class StreamClosed(Exception):
    """Raised by a source or sink: the stream is closed (the guest sees `stream-error.closed`)."""


class StreamFailed(Exception):
    """Raised by a source or sink: the operation failed with `error` (`last-operation-failed`)."""

    def __init__(self, error: IoError) -> None:
        super().__init__(error.message)
        self.error = error


class ByteSource(Protocol):
    """Where an `InputStream` reads from (`pipes.BytesSource`, `pipes.BufferedSource`).

    Neither method blocks. A source another thread fills calls its
    instance's `wake()` when it turns ready, after releasing its own locks
    (`ready` is called under the instance's lock).
    """

    def read(self, limit: int) -> bytes:
        """Up to `limit` bytes available now; b"" when none are yet (or `limit` is 0).

        Raises `StreamClosed` once every byte was read and no more will
        come, `StreamFailed` when the source failed (after the bytes that
        came before the failure were read).
        """
        ...

    def ready(self) -> bool:
        """Whether `read` would now return bytes or raise (the end or a failure)."""
        ...


class ByteSink(Protocol):
    """Where an `OutputStream` writes to (`pipes.BufferedSink`, `pipes.ForwardingSink`).

    None of the methods blocks. A sink another thread drains calls its
    instance's `wake()` when room appears, after releasing its own locks
    (`check_write` is called under the instance's lock).
    """

    def check_write(self) -> int:
        """How many bytes `write` takes now (0: none yet), without side effects.

        Raises `StreamClosed` when the other end is gone, `StreamFailed`
        when a previous write or flush failed. A flush still in progress
        is modelled by returning 0 until it is done.
        """
        ...

    def write(self, data: bytes) -> None:
        """Take `data`, never more than `check_write` allows (the stream enforces it)."""
        ...

    def flush(self) -> None:
        """Start pushing out what `write` took; raises as `check_write` does."""
        ...


class Pollable(HostResource):
    """`wasi:io/poll.pollable`: ready when `predicate()` is true.

    `due` is the monotonic time (`time.monotonic()` seconds) at which a
    timer turns ready by itself, so a wait wakes then without being told;
    any other pollable is made ready by something that calls the instance's
    `wake()`. A pollable from a `subscribe` is a child of its `parent`.
    """

    resource_name = "pollable"

    def __init__(
        self,
        instance: WasiInstance,
        predicate: Callable[[], bool],
        *,
        due: float | None = None,
        parent: HostResource | None = None,
    ) -> None:
        super().__init__(parent)
        self.instance = instance
        self.predicate = predicate
        self.due = due

    @classmethod
    def timer(cls, instance: WasiInstance, due_ns: int) -> Pollable:
        """A pollable ready once `time.monotonic_ns()` reaches `due_ns`."""
        return cls(instance, lambda: time.monotonic_ns() >= due_ns, due=due_ns / 1e9)

    @classmethod
    def always(cls, instance: WasiInstance, *, parent: HostResource | None = None) -> Pollable:
        """A pollable that is always ready."""
        return cls(instance, _always, parent=parent)

    def ready(self) -> bool:
        """`ready`: whether the event happened; never blocks."""
        return self.predicate()

    def block(self) -> None:
        """`block`: wait until ready (or trap at the instance's deadline)."""
        poll(self.instance, [self])


def _always() -> bool:
    return True


def poll(instance: WasiInstance, pollables: Sequence[Pollable]) -> list[int]:
    """`poll`: wait until at least one pollable is ready; the indexes of the ready ones.

    Traps on an empty list (as wasmtime does: it could never return) and
    at the instance's deadline, interruption or host shutdown.
    """
    if not pollables:
        raise GuestFault("poll: empty list of pollables")
    due = [p.due for p in pollables if p.due is not None]
    until = min(due) if due else None
    found: list[int] = []

    def any_ready() -> bool:
        found[:] = [i for i, p in enumerate(pollables) if p.ready()]
        return bool(found)

    while not instance.wait(any_ready, until):
        pass  # a timer's time came: `any_ready` finds it on the next round
    return found


class _Answer(Exception):
    """Ends an operation with a result already made (an error of another stream)."""

    def __init__(self, result: Ok | Err) -> None:
        super().__init__()
        self.result = result


class _Stream(HostResource):
    """What input and output streams share: how errors become results, and the close hook."""

    def __init__(
        self,
        instance: WasiInstance,
        *,
        parent: HostResource | None,
        on_close: Callable[[], None] | None,
    ) -> None:
        super().__init__(parent)
        self.instance = instance
        self.on_close = on_close
        # A failure is reported once; the stream is closed after it, as in wasmtime.
        self._failed = False

    def _result(self, operation: Callable[[], Any]) -> Ok | Err:
        """`ok(operation())`, or the stream error it raised."""
        if self._failed:
            return CLOSED
        try:
            return Ok(operation())
        except StreamClosed:
            return CLOSED
        except StreamFailed as failure:
            self._failed = True
            return Err(Case("last-operation-failed", failure.error))
        except _Answer as answer:
            return answer.result

    def on_release(self) -> None:
        if self.on_close is not None:
            self.on_close()


class InputStream(_Stream):
    """`wasi:io/streams.input-stream` over a `ByteSource`.

    `parent` is the resource it was made from (its handle cannot be dropped
    before this stream's); `on_close` is called once when the guest's handle
    goes (an HTTP body learns that its stream was dropped).
    """

    resource_name = "input-stream"

    def __init__(
        self,
        instance: WasiInstance,
        source: ByteSource,
        *,
        parent: HostResource | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(instance, parent=parent, on_close=on_close)
        self.source = source

    def _readable(self) -> bool:
        return self._failed or self.source.ready()

    def _read(self, length: int) -> bytes:
        return self.source.read(min(length, READ_LIMIT))

    def _blocking_read(self, length: int) -> bytes:
        for _ in range(_BLOCKING_ATTEMPTS):
            self.instance.wait(self._readable)
            data = self._read(length)
            if data or length == 0:
                return data
        raise GuestFault("blocking read: the stream said it was ready but had nothing, too often")

    def read(self, length: int) -> Ok | Err:
        """`read`: up to `length` bytes available now (maybe none)."""
        return self._result(lambda: self._read(length))

    def blocking_read(self, length: int) -> Ok | Err:
        """`blocking-read`: wait until bytes, the end or an error, then read."""
        return self._result(lambda: self._blocking_read(length))

    def skip(self, length: int) -> Ok | Err:
        """`skip`: as `read`, but the number of bytes read."""
        return self._result(lambda: len(self._read(length)))

    def blocking_skip(self, length: int) -> Ok | Err:
        """`blocking-skip`: as `blocking-read`, but the number of bytes read."""
        return self._result(lambda: len(self._blocking_read(length)))

    def subscribe(self) -> Pollable:
        """`subscribe`: a child pollable, ready when bytes, the end or an error can be read."""
        return Pollable(self.instance, self._readable, parent=self)


class OutputStream(_Stream):
    """`wasi:io/streams.output-stream` over a `ByteSink`.

    `write` and `write-zeroes` trap when given more than the sink accepts
    (`check-write` permits), as wasmtime does. `parent` and `on_close` are
    as for `InputStream`.
    """

    resource_name = "output-stream"

    def __init__(
        self,
        instance: WasiInstance,
        sink: ByteSink,
        *,
        parent: HostResource | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(instance, parent=parent, on_close=on_close)
        self.sink = sink

    def _writable(self) -> bool:
        if self._failed:
            return True
        try:
            return self.sink.check_write() > 0
        except (StreamClosed, StreamFailed):
            return True

    def _write_ready(self) -> int:
        """Wait until the sink takes bytes; how many (wasmtime's `write_ready`)."""
        for _ in range(_BLOCKING_ATTEMPTS):
            self.instance.wait(self._writable)
            permit = self.sink.check_write()
            if permit > 0:
                return permit
        raise GuestFault("blocking write: the stream said it was ready but took nothing, too often")

    def _write(self, data: bytes) -> None:
        permit = self.sink.check_write()
        if len(data) > permit:
            raise GuestFault(f"write of {len(data)} bytes exceeds the {permit} check-write permits")
        self.sink.write(data)

    def _blocking_write_and_flush(self, data: bytes) -> None:
        view = memoryview(data)
        while True:
            permit = self._write_ready()
            self.sink.write(bytes(view[:permit]))
            view = view[permit:]
            if not view:
                break
        # wasmtime reports a failure of the flush, but not that the stream closed since.
        try:
            self.sink.flush()
            self._write_ready()
        except StreamClosed:
            pass

    def _flush(self, blocking: bool) -> None:
        self.sink.flush()
        if blocking:
            self._write_ready()

    def _splice(self, source: InputStream, length: int, blocking: bool) -> int:
        length = min(length, self._write_ready() if blocking else self.sink.check_write())
        if length == 0:
            return 0
        read = source.blocking_read(length) if blocking else source.read(length)
        if isinstance(read, Err):
            raise _Answer(read)
        data: bytes = read.value
        if data:
            (self._blocking_write_and_flush if blocking else self._write)(data)
        return len(data)

    def check_write(self) -> Ok | Err:
        """`check-write`: how many bytes the next `write` may carry."""
        return self._result(self.sink.check_write)

    def write(self, contents: bytes) -> Ok | Err:
        """`write`: never blocks; traps past the permit."""
        return self._result(lambda: self._write(contents))

    def blocking_write_and_flush(self, contents: bytes) -> Ok | Err:
        """`blocking-write-and-flush`: at most 4096 bytes (more traps), written and flushed."""
        if len(contents) > BLOCKING_WRITE_LIMIT:
            raise GuestFault(
                f"blocking-write-and-flush of {len(contents)} bytes (at most {BLOCKING_WRITE_LIMIT})"
            )
        return self._result(lambda: self._blocking_write_and_flush(contents))

    def flush(self) -> Ok | Err:
        """`flush`: start flushing; never blocks."""
        return self._result(lambda: self._flush(False))

    def blocking_flush(self) -> Ok | Err:
        """`blocking-flush`: flush and wait until the stream takes bytes again."""
        return self._result(lambda: self._flush(True))

    def subscribe(self) -> Pollable:
        """`subscribe`: a child pollable, ready when `check-write` permits bytes or fails."""
        return Pollable(self.instance, self._writable, parent=self)

    def write_zeroes(self, length: int) -> Ok | Err:
        """`write-zeroes`: `write` of `length` zero bytes (traps past the permit)."""
        return self._result(lambda: self._write_zeroes(length))

    def _write_zeroes(self, length: int) -> None:
        permit = self.sink.check_write()
        if length > permit:
            raise GuestFault(f"write-zeroes of {length} bytes exceeds the {permit} check-write permits")
        self.sink.write(bytes(length))

    def blocking_write_zeroes_and_flush(self, length: int) -> Ok | Err:
        """`blocking-write-zeroes-and-flush`: at most 4096 zeroes (more traps)."""
        if length > BLOCKING_WRITE_LIMIT:
            raise GuestFault(
                f"blocking-write-zeroes-and-flush of {length} bytes (at most {BLOCKING_WRITE_LIMIT})"
            )
        return self._result(lambda: self._blocking_write_and_flush(bytes(length)))

    def splice(self, source: InputStream, length: int) -> Ok | Err:
        """`splice`: move what `source` has now, up to `length` and the permit."""
        return self._result(lambda: self._splice(source, length, False))

    def blocking_splice(self, source: InputStream, length: int) -> Ok | Err:
        """`blocking-splice`: wait for room, then for bytes, move them and flush."""
        return self._result(lambda: self._splice(source, length, True))


def _method(name: str) -> Callable[..., Any]:
    """The body of a resource method: the object's method `name` (subclasses may override it)."""

    def body(_instance: WasiInstance, obj: Any, *args: Any) -> Any:
        return getattr(obj, name)(*args)

    return body


_ERROR = "wasi:io/error"
_POLL = "wasi:io/poll"
_STREAMS = "wasi:io/streams"

#: The body of every function of `wasi:io` error, poll and streams.
BODIES: dict[tuple[str, str], Callable[..., Any]] = {
    (_ERROR, "[method]error.to-debug-string"): _method("to_debug_string"),
    (_POLL, "[method]pollable.ready"): _method("ready"),
    (_POLL, "[method]pollable.block"): _method("block"),
    (_POLL, "poll"): poll,
    (_STREAMS, "[method]input-stream.read"): _method("read"),
    (_STREAMS, "[method]input-stream.blocking-read"): _method("blocking_read"),
    (_STREAMS, "[method]input-stream.skip"): _method("skip"),
    (_STREAMS, "[method]input-stream.blocking-skip"): _method("blocking_skip"),
    (_STREAMS, "[method]input-stream.subscribe"): _method("subscribe"),
    (_STREAMS, "[method]output-stream.check-write"): _method("check_write"),
    (_STREAMS, "[method]output-stream.write"): _method("write"),
    (_STREAMS, "[method]output-stream.blocking-write-and-flush"): _method("blocking_write_and_flush"),
    (_STREAMS, "[method]output-stream.flush"): _method("flush"),
    (_STREAMS, "[method]output-stream.blocking-flush"): _method("blocking_flush"),
    (_STREAMS, "[method]output-stream.subscribe"): _method("subscribe"),
    (_STREAMS, "[method]output-stream.write-zeroes"): _method("write_zeroes"),
    (_STREAMS, "[method]output-stream.blocking-write-zeroes-and-flush"): _method(
        "blocking_write_zeroes_and_flush"
    ),
    (_STREAMS, "[method]output-stream.splice"): _method("splice"),
    (_STREAMS, "[method]output-stream.blocking-splice"): _method("blocking_splice"),
}

#: The class of each `wasi:io` resource.
RESOURCES: dict[tuple[str, str], type] = {
    (_ERROR, "error"): IoError,
    (_POLL, "pollable"): Pollable,
    (_STREAMS, "input-stream"): InputStream,
    (_STREAMS, "output-stream"): OutputStream,
}
