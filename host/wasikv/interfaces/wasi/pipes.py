"""Ready-made byte sources and sinks for `io.InputStream` and `io.OutputStream`.

- `BytesSource`: fixed bytes (a body read whole; stdin's nothing).
- `BufferedSource`: a bounded queue a producer thread fills (a request body
  arriving from a client); the producer waits while it is full.
- `BufferedSink`: a bounded queue a consumer thread drains (a response body
  going to a client); the guest waits while it is full.
- `ForwardingSink`: writes straight into a file-like object (stdout, stderr).

A queue wakes the instance after releasing its own lock: the instance calls
`ready`/`check_write` under its lock, so waking under ours could deadlock.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from ...capability import OutputStream as Writable
from .io import IoError, StreamClosed, StreamFailed
from .state import WasiInstance

__all__ = [
    "DEFAULT_CAPACITY",
    "STDIO_BUDGET",
    "BufferedSink",
    "BufferedSource",
    "BytesSource",
    "ForwardingSink",
]

#: The bytes a `BufferedSource` or `BufferedSink` holds at most, unless told otherwise.
DEFAULT_CAPACITY = 64 * 1024
#: What `ForwardingSink.check_write` permits (wasmtime's stdio streams permit 1 MiB).
STDIO_BUDGET = 1024 * 1024


class BytesSource:
    """A `ByteSource` over fixed bytes: read in pieces, then closed."""

    def __init__(self, data: bytes = b"") -> None:
        self._data = memoryview(data)

    def read(self, limit: int) -> bytes:
        """The next up-to-`limit` bytes; `StreamClosed` once all were read."""
        if not self._data:
            raise StreamClosed
        chunk, self._data = self._data[:limit], self._data[limit:]
        return bytes(chunk)

    def ready(self) -> bool:
        """Always: the bytes, or the end, are there."""
        return True


class _Queue:
    """A bounded byte queue guarded by one condition (what both buffered pipes are)."""

    def __init__(self, instance: WasiInstance, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"a buffer's capacity must be at least 1 byte, not {capacity}")
        self.instance = instance
        self.capacity = capacity
        self._condition = threading.Condition()
        self._chunks: deque[bytes] = deque()
        self._size = 0

    @property
    def buffered(self) -> int:
        """How many bytes are queued."""
        return self._size

    def _put(self, data: bytes) -> None:
        # The caller holds the condition and made sure `data` fits.
        if data:
            self._chunks.append(data)
            self._size += len(data)

    def _get(self, limit: int) -> bytes:
        # The caller holds the condition.
        parts: list[bytes] = []
        wanted = limit
        while wanted and self._chunks:
            chunk = self._chunks.popleft()
            if len(chunk) > wanted:
                chunk, rest = chunk[:wanted], chunk[wanted:]
                self._chunks.appendleft(rest)
            parts.append(chunk)
            wanted -= len(chunk)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self._size -= len(data)
        return data

    def _drop(self) -> None:
        self._chunks.clear()
        self._size = 0


class BufferedSource(_Queue):
    """A `ByteSource` a producer thread fills, holding at most `capacity` bytes.

    Producer side: `offer` (never blocks) or `feed` (waits for room), then
    `finish` (the end) or `fail` (an error). Reader side: the stream's
    `read`/`ready`, and `close` when the reader is gone (the guest dropped
    the stream, or its owner gave up): queued bytes are dropped, and the
    producer's `offer` raises `StreamClosed`, its `feed` returns False.
    `on_space` (if given) is called, on the reader's thread and outside the
    lock, whenever reading made room: for a producer that does not block
    in `feed` (an event loop).
    """

    def __init__(
        self,
        instance: WasiInstance,
        capacity: int = DEFAULT_CAPACITY,
        *,
        on_space: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(instance, capacity)
        self.on_space = on_space
        self._finished = False
        self._error: IoError | None = None
        self._closed = False

    @property
    def finished(self) -> bool:
        """Whether the producer said the end (`finish` or `fail`)."""
        return self._finished

    @property
    def closed(self) -> bool:
        """Whether the reader is gone."""
        return self._closed

    @property
    def free(self) -> int:
        """How many bytes `offer` takes now."""
        return self.capacity - self._size

    def offer(self, data: bytes) -> int:
        """Queue what fits of `data` now; how many bytes that was (0 when full).

        Raises `StreamClosed` when the reader is gone, `ValueError` after
        `finish` or `fail`.
        """
        with self._condition:
            self._check_open()
            taken = min(len(data), self.capacity - self._size)
            self._put(data[:taken] if taken < len(data) else data)
        if taken:
            self.instance.wake()
        return taken

    def feed(self, data: bytes, timeout: float | None = None) -> bool:
        """Queue all of `data`, waiting for room as the reader reads; False if the reader went away.

        Raises `TimeoutError` when `timeout` seconds pass first (what was
        queued until then stays queued), `ValueError` after `finish`/`fail`.
        """
        until = None if timeout is None else time.monotonic() + timeout
        view = memoryview(data)
        while view:
            with self._condition:
                while not self._closed and self._size >= self.capacity:
                    remaining = None if until is None else until - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise TimeoutError(f"the reader took none of the last {len(view)} bytes in time")
                    self._condition.wait(remaining)
                if self._closed:
                    return False
                self._check_open()
                taken = min(len(view), self.capacity - self._size)
                self._put(bytes(view[:taken]))
            view = view[taken:]
            self.instance.wake()
        return not self._closed

    def finish(self) -> None:
        """No more bytes: the reader gets `closed` after reading those queued."""
        with self._condition:
            self._finished = True
        self.instance.wake()

    def fail(self, error: IoError) -> None:
        """The source failed: the reader gets `last-operation-failed` after the bytes queued."""
        with self._condition:
            if not self._finished:
                self._finished = True
                self._error = error
        self.instance.wake()

    def close(self) -> None:
        """The reader is gone: drop what is queued, and tell the producer."""
        with self._condition:
            self._closed = True
            self._drop()
            self._condition.notify_all()

    def read(self, limit: int) -> bytes:
        """`ByteSource.read`: up to `limit` queued bytes, b"" when none are yet."""
        with self._condition:
            if self._closed:
                raise StreamClosed
            if not self._size:
                if self._error is not None:
                    raise StreamFailed(self._error)
                if self._finished:
                    raise StreamClosed
                return b""
            data = self._get(limit)
            if data:
                self._condition.notify_all()
        if data and self.on_space is not None:
            self.on_space()
        return data

    def ready(self) -> bool:
        """`ByteSource.ready`: bytes are queued, or the end or a failure came."""
        return bool(self._size) or self._finished or self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise StreamClosed
        if self._finished:
            raise ValueError("bytes offered after the source was finished")


class BufferedSink(_Queue):
    """A `ByteSink` a consumer thread drains, holding at most `capacity` bytes.

    Guest side: the stream's `check_write` (the free room: the guest waits
    while it is 0), `write`, `flush` (nothing to do: a queued byte counts as
    flushed, as for wasmtime's HTTP bodies). Owner side: `finish` when the
    writer is done (the HTTP body was finished). Consumer side: `take` (waits)
    or `take_nowait`, b"" meaning the end; `close` (the consumer is gone:
    the guest's next operation gets `closed`) or `fail` (it gets
    `last-operation-failed`). `on_data` (if given) is called, on the guest's
    thread and outside the lock, when bytes or the end arrive: for a
    consumer that does not block in `take` (an event loop).
    """

    def __init__(
        self,
        instance: WasiInstance,
        capacity: int = DEFAULT_CAPACITY,
        *,
        on_data: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(instance, capacity)
        self.on_data = on_data
        self._finished = False
        self._closed = False
        self._error: IoError | None = None

    @property
    def finished(self) -> bool:
        """Whether the writer is done (`finish`)."""
        return self._finished

    @property
    def closed(self) -> bool:
        """Whether the consumer is gone (`close` or `fail`)."""
        return self._closed

    def check_write(self) -> int:
        """`ByteSink.check_write`: the free room."""
        if self._error is not None:
            raise StreamFailed(self._error)
        if self._closed or self._finished:
            raise StreamClosed
        return self.capacity - self._size

    def write(self, data: bytes) -> None:
        """`ByteSink.write`: queue `data` (the stream checked it fits)."""
        with self._condition:
            self.check_write()
            if len(data) > self.capacity - self._size:
                raise ValueError(f"{len(data)} bytes written to a sink with room for {self.free}")
            self._put(data)
            self._condition.notify_all()
        if data and self.on_data is not None:
            self.on_data()

    def flush(self) -> None:
        """`ByteSink.flush`: nothing to push (raises as `check_write` does)."""
        self.check_write()

    @property
    def free(self) -> int:
        """The free room."""
        return self.capacity - self._size

    def finish(self) -> None:
        """The writer is done: the consumer gets b"" after the bytes queued."""
        with self._condition:
            self._finished = True
            self._condition.notify_all()
        if self.on_data is not None:
            self.on_data()

    def take_nowait(self, limit: int) -> bytes | None:
        """Up to `limit` (at least 1) queued bytes; None when none are yet, b"" at the end."""
        _check_limit(limit)
        with self._condition:
            data = self._take(limit)
        if data:
            self.instance.wake()
        return data

    def take(self, limit: int, timeout: float | None = None) -> bytes:
        """Up to `limit` bytes, waiting for at least one; b"" at the end (or after `close`).

        `limit` must be at least 1. Raises `TimeoutError` when `timeout`
        seconds pass with nothing.
        """
        _check_limit(limit)
        until = None if timeout is None else time.monotonic() + timeout
        with self._condition:
            while (data := self._take(limit)) is None:
                remaining = None if until is None else until - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError("the writer wrote nothing in time")
                self._condition.wait(remaining)
        if data:
            self.instance.wake()
        return data

    def _take(self, limit: int) -> bytes | None:
        # The caller holds the condition.
        if self._size and not self._closed:
            return self._get(limit)
        if self._finished or self._closed:
            return b""
        return None

    def close(self) -> None:
        """The consumer is gone: drop what is queued; the guest's writes get `closed`."""
        with self._condition:
            self._closed = True
            self._drop()
            self._condition.notify_all()
        self.instance.wake()

    def fail(self, error: IoError) -> None:
        """The consumer failed: the guest's next operation gets `last-operation-failed`."""
        with self._condition:
            self._error = error
            self._closed = True
            self._drop()
            self._condition.notify_all()
        self.instance.wake()


def _check_limit(limit: int) -> None:
    # b"" means the end: a take of 0 bytes could not be told from it.
    if limit < 1:
        raise ValueError(f"take at least 1 byte, not {limit}")


class ForwardingSink:
    """A `ByteSink` writing straight into `target` (a binary file, a `CapturedOutput`).

    It always permits `budget` bytes; a broken pipe closes it, any other
    `OSError` fails the write (then it is closed).
    """

    def __init__(self, target: Writable, budget: int = STDIO_BUDGET) -> None:
        self.target = target
        self.budget = budget
        self._closed = False

    def check_write(self) -> int:
        """`ByteSink.check_write`: the budget, unless the target broke."""
        if self._closed:
            raise StreamClosed
        return self.budget

    def write(self, data: bytes) -> None:
        """`ByteSink.write`: into the target."""
        self.check_write()
        self._call(lambda: self.target.write(data))

    def flush(self) -> None:
        """`ByteSink.flush`: the target's `flush`, when it has one."""
        self.check_write()
        flush = getattr(self.target, "flush", None)
        if callable(flush):
            self._call(flush)

    def _call(self, operation: Callable[[], object]) -> None:
        try:
            operation()
        except BrokenPipeError:
            self._closed = True
            raise StreamClosed from None
        except OSError as exc:
            self._closed = True
            raise StreamFailed(IoError(f"{type(exc).__name__}: {exc}")) from None
