"""wasi:clocks/monotonic-clock: the clock, and timers that wait through the instance (and its deadline)."""

from __future__ import annotations

from wasikv.interfaces.wasi.state import WasiInstance

from .conftest import call

CLOCK = "wasi:clocks/monotonic-clock"
POLL = "wasi:io/poll"
U64_MAX = 2**64 - 1


def test_the_clock_moves_forward_in_nanoseconds(instance: WasiInstance) -> None:
    first = call(instance, CLOCK, "now")
    second = call(instance, CLOCK, "now")
    assert 0 <= first <= second < U64_MAX
    assert call(instance, CLOCK, "resolution") >= 1


def test_a_sleep_lasts_at_least_its_duration(instance: WasiInstance) -> None:
    start = call(instance, CLOCK, "now")
    timer = call(instance, CLOCK, "subscribe-duration", 20_000_000)
    call(instance, POLL, "[method]pollable.block", timer)
    assert call(instance, POLL, "[method]pollable.ready", timer) is True
    assert call(instance, CLOCK, "now") - start >= 20_000_000


def test_an_instant_in_the_past_is_ready_at_once(instance: WasiInstance) -> None:
    now = call(instance, CLOCK, "now")
    for function, when in [("subscribe-instant", 0), ("subscribe-instant", now), ("subscribe-duration", 0)]:
        timer = call(instance, CLOCK, function, when)
        assert call(instance, POLL, "[method]pollable.ready", timer) is True, (function, when)


def test_the_earliest_timer_ends_a_poll(instance: WasiInstance) -> None:
    never = call(instance, CLOCK, "subscribe-instant", U64_MAX)
    soon = call(instance, CLOCK, "subscribe-instant", call(instance, CLOCK, "now") + 10_000_000)
    later = call(instance, CLOCK, "subscribe-duration", 3600 * 10**9)
    assert call(instance, POLL, "poll", [never, later, soon]) == [2]
    assert call(instance, POLL, "[method]pollable.ready", never) is False
