"""Fixtures for the Python WASI layer: instances with real deadlines, calls as the dispatcher makes them."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from wasikv.interfaces.wasi import cli, clocks, filesystem, io, sockets
from wasikv.interfaces.wasi.state import WasiInstance
from wasikv.runtime.deadlines import Deadline, Shutdown

#: Every body, as the dispatcher finds them.
BODIES: dict[tuple[str, str], Any] = {
    **io.BODIES,
    **clocks.BODIES,
    **cli.BODIES,
    **filesystem.BODIES,
    **sockets.BODIES,
}


def call(instance: WasiInstance, interface: str, function: str, *args: Any) -> Any:
    """Call the body of `function` of `interface` as the dispatcher does."""
    return BODIES[interface, function](instance, *args)


def make_instance(timeout: float | None = 60.0) -> WasiInstance:
    """An instance with a real deadline `timeout` seconds away (generous by default)."""
    return WasiInstance(deadline=Deadline(timeout, Shutdown()))


@pytest.fixture
def instance() -> WasiInstance:
    """An instance whose deadline no test should reach."""
    return make_instance()


@pytest.fixture
def in_thread() -> Iterator[Callable[[Callable[[], object]], threading.Thread]]:
    """Start functions on threads (a producer, a consumer); join them all at the end."""
    threads: list[threading.Thread] = []
    failures: list[BaseException] = []

    def start(function: Callable[[], object]) -> threading.Thread:
        def run() -> None:
            try:
                function()
            except BaseException as exc:  # reported by the test, not lost on the thread
                failures.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        threads.append(thread)
        return thread

    yield start
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive(), "a helper thread never finished"
    if failures:
        raise failures[0]
