"""wasi:io error, poll and streams, called as the dispatcher calls them: results, traps, handle rules."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from wasikv.interfaces.wasi.io import InputStream, IoError, OutputStream, Pollable
from wasikv.interfaces.wasi.pipes import BufferedSink, BufferedSource, BytesSource
from wasikv.interfaces.wasi.state import WasiInstance
from wasikv.runtime._capi import GuestFault
from wasikv.runtime.codec import Case, Err, Ok

from .conftest import call, make_instance

STREAMS = "wasi:io/streams"
POLL = "wasi:io/poll"
CLOCK = "wasi:clocks/monotonic-clock"
U64_MAX = 2**64 - 1
CLOSED = Err(Case("closed"))

Starter = Callable[[Callable[[], object]], threading.Thread]


def read(instance: WasiInstance, stream: InputStream, length: int, *, blocking: bool = False) -> object:
    name = "blocking-read" if blocking else "read"
    return call(instance, STREAMS, f"[method]input-stream.{name}", stream, length)


def out(instance: WasiInstance, stream: OutputStream, name: str, *args: object) -> object:
    return call(instance, STREAMS, f"[method]output-stream.{name}", stream, *args)


def failed_with(result: object, message: str) -> bool:
    """Whether `result` is err(last-operation-failed(e)) with e saying `message`."""
    if not (isinstance(result, Err) and isinstance(result.value, Case)):
        return False
    case = result.value
    return (
        case.name == "last-operation-failed"
        and call(make_instance(), "wasi:io/error", "[method]error.to-debug-string", case.payload) == message
    )


# ------------------------------------------------------------------ input streams


def test_read_returns_what_is_there_then_closed_at_the_end(instance: WasiInstance) -> None:
    stream = InputStream(instance, BytesSource(b"hello world"))
    assert read(instance, stream, 5) == Ok(b"hello")
    assert call(instance, STREAMS, "[method]input-stream.skip", stream, 1) == Ok(1)
    assert read(instance, stream, 0) == Ok(b"")  # open: a read of 0 succeeds
    assert read(instance, stream, 100, blocking=True) == Ok(b"world")
    assert read(instance, stream, 0) == CLOSED
    assert read(instance, stream, 10, blocking=True) == CLOSED
    assert call(instance, STREAMS, "[method]input-stream.blocking-skip", stream, 10) == CLOSED


def test_a_read_of_any_length_returns_at_most_the_read_limit(instance: WasiInstance) -> None:
    from wasikv.interfaces.wasi.io import READ_LIMIT

    stream = InputStream(instance, BytesSource(bytes(READ_LIMIT + 10)))
    got = read(instance, stream, U64_MAX)
    assert isinstance(got, Ok) and len(got.value) == READ_LIMIT
    assert call(instance, STREAMS, "[method]input-stream.skip", stream, U64_MAX) == Ok(10)


def test_a_non_blocking_read_of_an_empty_open_source_is_empty(instance: WasiInstance) -> None:
    source = BufferedSource(instance, 16)
    stream = InputStream(instance, source)
    assert read(instance, stream, 10) == Ok(b"")
    assert call(instance, STREAMS, "[method]input-stream.skip", stream, 10) == Ok(0)
    pollable = call(instance, STREAMS, "[method]input-stream.subscribe", stream)
    assert call(instance, POLL, "[method]pollable.ready", pollable) is False
    source.offer(b"x")
    assert call(instance, POLL, "[method]pollable.ready", pollable) is True


def test_blocking_read_is_woken_by_a_producer_thread(instance: WasiInstance, in_thread: Starter) -> None:
    source = BufferedSource(instance, 16)
    stream = InputStream(instance, source)
    waiting = threading.Event()

    def produce() -> None:
        waiting.wait(30)
        time.sleep(0.05)  # most likely, the guest is blocked by now; correct either way
        source.feed(b"late")
        source.finish()

    in_thread(produce)
    waiting.set()
    assert read(instance, stream, 10, blocking=True) == Ok(b"late")
    assert read(instance, stream, 10, blocking=True) == CLOSED


def test_a_failure_is_reported_once_after_the_bytes_before_it_then_closed(instance: WasiInstance) -> None:
    source = BufferedSource(instance, 16)
    stream = InputStream(instance, source)
    source.offer(b"ab")
    source.fail(IoError("connection reset"))
    assert read(instance, stream, 10) == Ok(b"ab")
    assert failed_with(read(instance, stream, 10), "connection reset")
    assert read(instance, stream, 10) == CLOSED
    assert read(instance, stream, 10, blocking=True) == CLOSED


def test_the_error_resource_carries_an_http_error_code() -> None:
    error = IoError("body too long", http_error=Case("HTTP-request-body-size", 12))
    assert error.http_error == Case("HTTP-request-body-size", 12)
    assert call(make_instance(), "wasi:io/error", "[method]error.to-debug-string", error) == "body too long"


# ------------------------------------------------------------------ output streams


def test_check_write_permits_the_free_room_and_write_past_it_traps(instance: WasiInstance) -> None:
    sink = BufferedSink(instance, 10)
    stream = OutputStream(instance, sink)
    assert out(instance, stream, "check-write") == Ok(10)
    assert out(instance, stream, "write", b"123456") == Ok()
    assert out(instance, stream, "check-write") == Ok(4)
    with pytest.raises(GuestFault, match="exceeds"):
        out(instance, stream, "write", b"12345")
    with pytest.raises(GuestFault, match="exceeds"):
        out(instance, stream, "write-zeroes", 5)
    with pytest.raises(GuestFault, match="exceeds"):
        out(instance, stream, "write-zeroes", U64_MAX)  # refused before anything is allocated
    assert out(instance, stream, "write-zeroes", 4) == Ok()
    assert out(instance, stream, "check-write") == Ok(0)
    assert out(instance, stream, "write", b"") == Ok()
    assert sink.take(100) == b"123456\0\0\0\0"
    assert sink.buffered == 0


def test_blocking_write_and_flush_takes_at_most_4096_bytes(instance: WasiInstance) -> None:
    # One byte more than both writes: after its flush, a blocking write waits for room again.
    sink = BufferedSink(instance, 8193)
    stream = OutputStream(instance, sink)
    with pytest.raises(GuestFault, match="4096"):
        out(instance, stream, "blocking-write-and-flush", bytes(4097))
    with pytest.raises(GuestFault, match="4096"):
        out(instance, stream, "blocking-write-zeroes-and-flush", 4097)
    assert out(instance, stream, "blocking-write-and-flush", b"x" * 4096) == Ok()
    assert out(instance, stream, "blocking-write-zeroes-and-flush", 4096) == Ok()
    assert sink.buffered == 8192


def test_a_blocking_write_waits_for_a_consumer_and_never_overfills(
    instance: WasiInstance, in_thread: Starter
) -> None:
    sink = BufferedSink(instance, 16)
    stream = OutputStream(instance, sink)
    received = bytearray()
    buffered: list[int] = []

    def consume() -> None:
        while chunk := sink.take(5, timeout=30):
            buffered.append(sink.buffered)
            received.extend(chunk)

    consumer = in_thread(consume)
    payload = bytes(range(256)) * 16
    assert out(instance, stream, "blocking-write-and-flush", payload) == Ok()
    sink.finish()
    consumer.join(30)
    assert bytes(received) == payload
    assert max(buffered) <= 16


def test_closed_and_failed_sinks(instance: WasiInstance) -> None:
    sink = BufferedSink(instance, 16)
    stream = OutputStream(instance, sink)
    sink.fail(IoError("client went away"))
    assert failed_with(out(instance, stream, "check-write"), "client went away")
    assert out(instance, stream, "write", b"x") == CLOSED  # reported once, closed after
    assert out(instance, stream, "flush") == CLOSED

    closed_sink = BufferedSink(instance, 16)
    closed = OutputStream(instance, closed_sink)
    pollable = out(instance, closed, "subscribe")
    assert call(instance, POLL, "[method]pollable.ready", pollable) is True  # not full yet
    closed_sink.close()
    assert call(instance, POLL, "[method]pollable.ready", pollable) is True  # closed: ready at once
    for name, args in [
        ("check-write", ()),
        ("write", (b"x",)),
        ("flush", ()),
        ("blocking-flush", ()),
        ("blocking-write-and-flush", (b"x",)),
        ("write-zeroes", (1,)),
    ]:
        assert out(instance, closed, name, *args) == CLOSED, name


def test_a_full_sink_is_not_writable_until_drained(instance: WasiInstance) -> None:
    sink = BufferedSink(instance, 4)
    stream = OutputStream(instance, sink)
    assert out(instance, stream, "write", b"abcd") == Ok()
    pollable = out(instance, stream, "subscribe")
    assert call(instance, POLL, "[method]pollable.ready", pollable) is False
    assert sink.take_nowait(3) == b"abc"
    assert call(instance, POLL, "[method]pollable.ready", pollable) is True
    assert out(instance, stream, "check-write") == Ok(3)


def test_splice_moves_what_the_permit_and_the_source_allow(instance: WasiInstance) -> None:
    sink = BufferedSink(instance, 4)
    stream = OutputStream(instance, sink)
    source = InputStream(instance, BytesSource(b"abcdef"))
    assert out(instance, stream, "splice", source, 10) == Ok(4)
    assert out(instance, stream, "splice", source, 10) == Ok(0)  # no room: nothing read
    assert sink.take_nowait(10) == b"abcd"
    assert out(instance, stream, "blocking-splice", source, 10) == Ok(2)
    assert out(instance, stream, "blocking-splice", source, 10) == CLOSED  # the source's end
    assert out(instance, stream, "check-write") == Ok(2)  # ... not the sink's


def test_a_failed_splice_source_does_not_close_the_destination(instance: WasiInstance) -> None:
    sink = BufferedSink(instance, 8)
    stream = OutputStream(instance, sink)
    producer = BufferedSource(instance, 8)
    producer.fail(IoError("upstream broke"))
    source = InputStream(instance, producer)
    assert failed_with(out(instance, stream, "splice", source, 8), "upstream broke")
    assert read(instance, source, 1) == CLOSED
    assert out(instance, stream, "write", b"ok") == Ok()


# ------------------------------------------------------------------ handle rules


def test_a_stream_with_a_live_pollable_cannot_be_dropped(instance: WasiInstance) -> None:
    closes: list[str] = []
    stream = InputStream(instance, BytesSource(b""), on_close=lambda: closes.append("closed"))
    first = call(instance, STREAMS, "[method]input-stream.subscribe", stream)
    second = call(instance, STREAMS, "[method]input-stream.subscribe", stream)
    with pytest.raises(GuestFault, match="resource has children"):
        stream.on_drop()
    first.on_drop()
    with pytest.raises(GuestFault, match="resource has children"):
        stream.on_drop()
    second.on_drop()
    stream.on_drop()
    stream.release()  # twice: nothing more
    assert closes == ["closed"]

    output = OutputStream(instance, BufferedSink(instance, 4))
    pollable = output.subscribe()
    with pytest.raises(GuestFault, match="output-stream"):
        output.on_drop()
    pollable.on_drop()
    output.on_drop()


def test_streams_can_be_children_of_another_resource(instance: WasiInstance) -> None:
    body = IoError("a stand-in for any parent resource")
    stream = InputStream(instance, BytesSource(b"x"), parent=body)
    assert body.children == 1
    with pytest.raises(GuestFault, match="resource has children"):
        body.release()
    stream.on_drop()
    assert body.children == 0
    body.release()


# ------------------------------------------------------------------ poll


def test_poll_returns_the_indexes_of_every_ready_pollable(instance: WasiInstance) -> None:
    source = BufferedSource(instance, 8)
    stream = InputStream(instance, source)
    waiting = call(instance, STREAMS, "[method]input-stream.subscribe", stream)
    far = call(instance, CLOCK, "subscribe-duration", 3600 * 10**9)
    now = call(instance, CLOCK, "subscribe-duration", 0)
    assert call(instance, POLL, "poll", [waiting, far, now]) == [2]
    source.offer(b"x")
    assert call(instance, POLL, "poll", [waiting, far, now, waiting]) == [0, 2, 3]
    call(instance, POLL, "[method]pollable.block", waiting)  # ready: returns at once


def test_poll_is_woken_by_another_thread(instance: WasiInstance, in_thread: Starter) -> None:
    source = BufferedSource(instance, 8)
    stream = InputStream(instance, source)
    pollable = call(instance, STREAMS, "[method]input-stream.subscribe", stream)
    far = call(instance, CLOCK, "subscribe-duration", 3600 * 10**9)
    in_thread(source.finish)
    assert call(instance, POLL, "poll", [far, pollable]) == [1]
    assert read(instance, stream, 1) == CLOSED


def test_poll_of_nothing_traps(instance: WasiInstance) -> None:
    with pytest.raises(GuestFault, match="empty"):
        call(instance, POLL, "poll", [])


def test_a_pollable_on_any_predicate(instance: WasiInstance) -> None:
    flag: list[bool] = []
    pollable = Pollable(instance, lambda: bool(flag))
    assert not pollable.ready()
    flag.append(True)
    instance.wake()
    pollable.block()
    assert Pollable.always(instance).ready()


# ------------------------------------------------------------------ deadlines


def _stopped(instance: WasiInstance, blocked: Callable[[], object]) -> str | None:
    with pytest.raises(GuestFault, match="wasikv stopped the guest"):
        blocked()
    assert instance.deadline is not None
    return instance.deadline.stopped


@pytest.mark.parametrize(
    "blocked_call", ["blocking-read", "poll", "sleep", "blocking-write", "blocking-splice"]
)
def test_the_deadline_stops_every_blocking_call(blocked_call: str) -> None:
    instance = make_instance(0.2)
    source = InputStream(instance, BufferedSource(instance, 8))
    full = OutputStream(instance, BufferedSink(instance, 1))
    assert out(instance, full, "write", b"x") == Ok()
    blocked: dict[str, Callable[[], object]] = {
        "blocking-read": lambda: read(instance, source, 10, blocking=True),
        "poll": lambda: call(
            instance,
            POLL,
            "poll",
            [call(instance, STREAMS, "[method]input-stream.subscribe", source)],
        ),
        "sleep": lambda: call(
            instance, POLL, "[method]pollable.block", call(instance, CLOCK, "subscribe-duration", U64_MAX)
        ),
        "blocking-write": lambda: out(instance, full, "blocking-write-and-flush", b"y"),
        "blocking-splice": lambda: out(instance, full, "blocking-splice", source, 1),
    }
    assert _stopped(instance, blocked[blocked_call]) == "timeout"


def test_a_host_shutdown_interrupts_a_blocked_call(in_thread: Starter) -> None:
    instance = make_instance(3600)
    assert instance.deadline is not None
    shutdown = instance.deadline.shutdown
    source = InputStream(instance, BufferedSource(instance, 8))

    def stop_host() -> None:
        time.sleep(0.05)  # most likely, the guest is blocked by now; correct either way
        shutdown.begin()

    in_thread(stop_host)
    assert _stopped(instance, lambda: read(instance, source, 1, blocking=True)) == "interrupted"


def test_a_cancelled_deadline_interrupts_a_sleep(in_thread: Starter) -> None:
    instance = make_instance(3600)
    deadline = instance.deadline
    assert deadline is not None

    def cancel() -> None:
        time.sleep(0.05)
        deadline.cancel()

    in_thread(cancel)
    sleep = call(instance, CLOCK, "subscribe-duration", 3600 * 10**9)
    assert _stopped(instance, lambda: call(instance, POLL, "[method]pollable.block", sleep)) == "interrupted"
