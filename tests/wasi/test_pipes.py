"""The byte sources and sinks behind streams: bounded queues both ways, fixed bytes, forwarding."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable

import pytest

from wasikv.interfaces.wasi.io import IoError, StreamClosed, StreamFailed
from wasikv.interfaces.wasi.pipes import BufferedSink, BufferedSource, BytesSource, ForwardingSink
from wasikv.interfaces.wasi.state import WasiInstance

Starter = Callable[[Callable[[], object]], threading.Thread]


def test_a_producer_cannot_grow_a_source_past_its_capacity(instance: WasiInstance) -> None:
    source = BufferedSource(instance, 8)
    assert source.offer(b"0123456789") == 8
    assert source.offer(b"x") == 0
    assert (source.buffered, source.free) == (8, 0)
    assert source.read(3) == b"012"
    assert source.offer(b"abcdef") == 3
    assert source.read(100) == b"34567abc"


def test_feed_waits_for_the_reader_and_never_overfills(instance: WasiInstance, in_thread: Starter) -> None:
    spaces: list[None] = []
    source = BufferedSource(instance, 16, on_space=lambda: spaces.append(None))
    payload = bytes(range(256)) * 40
    fed: list[bool] = []

    def produce() -> None:
        fed.append(source.feed(payload, timeout=30))
        source.finish()

    in_thread(produce)
    received = bytearray()
    buffered = []
    while True:
        instance.wait(source.ready)
        buffered.append(source.buffered)
        try:
            received += source.read(7)
        except StreamClosed:
            break
    assert bytes(received) == payload
    assert fed == [True]
    assert max(buffered) <= 16
    assert spaces  # the reader said when it made room


def test_a_reader_going_away_releases_a_blocked_producer(instance: WasiInstance, in_thread: Starter) -> None:
    source = BufferedSource(instance, 4)
    fed: list[bool] = []
    started = threading.Event()

    def produce() -> None:
        started.set()
        fed.append(source.feed(b"x" * 100, timeout=30))

    producer = in_thread(produce)
    started.wait(30)
    source.close()
    producer.join(30)
    assert fed == [False]
    assert source.buffered == 0
    with pytest.raises(StreamClosed):
        source.offer(b"more")
    with pytest.raises(StreamClosed):
        source.read(1)


def test_a_producer_that_waits_too_long_is_told(instance: WasiInstance) -> None:
    source = BufferedSource(instance, 2)
    with pytest.raises(TimeoutError):
        source.feed(b"abc", timeout=0.01)
    assert source.buffered == 2  # what fitted stays queued


def test_nothing_is_offered_after_the_end(instance: WasiInstance) -> None:
    source = BufferedSource(instance, 4)
    source.finish()
    with pytest.raises(ValueError, match="finished"):
        source.offer(b"x")
    failed = BufferedSource(instance, 4)
    failed.fail(IoError("gone"))
    failed.finish()  # the failure stays
    with pytest.raises(StreamFailed):
        failed.read(1)
    with pytest.raises(ValueError, match="capacity"):
        BufferedSource(instance, 0)


def test_a_sink_is_drained_by_take(instance: WasiInstance) -> None:
    datas: list[None] = []
    sink = BufferedSink(instance, 8, on_data=lambda: datas.append(None))
    assert sink.take_nowait(4) is None
    with pytest.raises(TimeoutError):
        sink.take(4, timeout=0.01)
    sink.write(b"abcdef")
    assert sink.check_write() == 2
    assert sink.take(4) == b"abcd"
    assert sink.check_write() == 6
    sink.finish()
    assert sink.take_nowait(10) == b"ef"
    assert sink.take(10) == b""  # the end
    assert sink.take_nowait(10) == b""
    assert len(datas) == 2  # the bytes, then the end
    with pytest.raises(StreamClosed):
        sink.check_write()  # the writer is done
    with pytest.raises(ValueError, match="at least 1"):
        sink.take(0)


def test_a_sink_refuses_to_overfill(instance: WasiInstance) -> None:
    sink = BufferedSink(instance, 4)
    with pytest.raises(ValueError, match="room"):
        sink.write(b"12345")


def test_a_consumer_going_away_closes_the_sink(instance: WasiInstance) -> None:
    sink = BufferedSink(instance, 4)
    sink.write(b"ab")
    sink.close()
    assert sink.buffered == 0
    assert sink.take(4) == b""
    with pytest.raises(StreamClosed):
        sink.check_write()
    failed = BufferedSink(instance, 4)
    failed.fail(IoError("reset"))
    with pytest.raises(StreamFailed):
        failed.flush()


def test_fixed_bytes() -> None:
    source = BytesSource(b"abc")
    assert source.ready()
    assert source.read(2) == b"ab"
    assert source.read(0) == b""
    assert source.read(5) == b"c"
    with pytest.raises(StreamClosed):
        source.read(0)


class _Broken(io.RawIOBase):
    def __init__(self, error: OSError) -> None:
        self.error = error

    def write(self, data: object) -> int:
        raise self.error


def test_forwarding_writes_and_flushes_the_target() -> None:
    target = io.BytesIO()
    sink = ForwardingSink(target, budget=10)
    assert sink.check_write() == 10
    sink.write(b"hello")
    sink.flush()
    assert target.getvalue() == b"hello"


def test_forwarding_to_a_broken_target() -> None:
    pipe = ForwardingSink(_Broken(BrokenPipeError(32, "Broken pipe")))
    with pytest.raises(StreamClosed):
        pipe.write(b"x")
    with pytest.raises(StreamClosed):
        pipe.check_write()
    disk = ForwardingSink(_Broken(OSError(28, "No space left on device")))
    with pytest.raises(StreamFailed, match="No space left"):
        disk.write(b"x")
    with pytest.raises(StreamClosed):
        disk.write(b"x")
