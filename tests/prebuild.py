"""The suite's slow preparations, started in the background as soon as the tests are collected.

componentize-py builds one component per process on one core, and a fresh
clone needs about twenty of them, each then compiled by wasmtime: built one
by one as tests first reach them, they were most of a fresh `make test`.
`make test` sets `WASIKV_PREBUILD=1`; tests/conftest.py then starts every
job listed here (build, then compile into the tests' compile cache) on
background threads and runs the tests that need no component first, so the
builds overlap them. A test that needs a component still building waits for
it (`background.once`); one missing from the lists is built on first use.
Test modules add their own jobs with `extra` (`wasikv new` templates, say).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable
from functools import partial
from pathlib import Path
from typing import Any

from wasikv import ComponentError, Host
from wasikv.build.guest_build import COMMAND_WORLD

from . import background
from .support import COMPILE_CACHE, build_foreign_guest, build_guest, foreign_key, guest_key

_HTTP = "wasikv:app/http-trigger"
_WATCH = "wasikv:app/watch-trigger"
_SDK = "wasikv:app/sdk"
_SPIN = "wasikv:app/spin-http"
_PROXY = "wasikv:app/proxy"
_DRAFT = "keyvalue-0.2.0-draft"
_UPSTREAM = "keyvalue-0.2.0-draft2-upstream"

#: `guest_wasm` arguments: (name, world, module); None for the defaults.
GUESTS: tuple[tuple[str, str | None, str | None], ...] = (
    ("suite", _SDK, None),
    ("examples/counter", None, None),
    ("examples/http-counter", _HTTP, None),
    ("examples/todo", _HTTP, "api"),
    ("examples/todo", _HTTP, "report"),
    ("examples/watch-audit", _HTTP, "notes"),
    ("examples/watch-audit", _WATCH, "audit"),
    ("spin_app", _SPIN, None),
    ("spin_app", _PROXY, None),
    ("portable", _PROXY, None),
    ("portable", _HTTP, None),
    ("portable", "wasikv:app/wasi-proxy", None),
    ("raising", _SDK, None),
    ("raising", "wasikv:app/wasi-proxy", "proxy"),
)

#: `foreign_guest_wasm` arguments: (keyvalue WITs, relabel, name).
FOREIGN: tuple[tuple[tuple[str, ...], str | None, str], ...] = (
    ((_DRAFT,), None, "foreign"),
    ((_UPSTREAM,), None, "foreign"),
    ((_DRAFT,), "0.2.0-draft2", "foreign"),
    ((_DRAFT, _UPSTREAM), None, "mixed"),
)

#: Environment variable that turns prebuilding on (`make test` sets it).
ENABLE = "WASIKV_PREBUILD"


def enabled() -> bool:
    """Whether this test run prebuilds (see `ENABLE`)."""
    return os.environ.get(ENABLE) == "1"


_EXTRA: list[tuple[Hashable, Callable[[], Any]]] = []


def extra(key: Hashable, make: Callable[[], Any]) -> None:
    """Add a job of a test module (run it with `background.once(key, make)` in the test)."""
    _EXTRA.append((key, make))


def jobs(compile_into: Host) -> list[tuple[Hashable, Callable[[], Any]]]:
    """Every job: each listed guest built and compiled, then the test modules' own jobs."""

    def built_and_compiled(build: Callable[[], Path]) -> Callable[[], Path]:
        def job() -> Path:
            wasm = build()
            try:
                compile_into.load(wasm)
            except ComponentError:
                pass  # refused by design: the guests that lie about their imports' types
            return wasm

        return job

    found: list[tuple[Hashable, Callable[[], Any]]] = []
    for name, world, module in GUESTS:
        world = world or COMMAND_WORLD
        module = module or "app"
        found.append(
            (guest_key(name, world, module), built_and_compiled(partial(build_guest, name, world, module)))
        )
    for keyvalue, relabel, guest in FOREIGN:
        found.append(
            (
                foreign_key(*keyvalue, relabel=relabel, name=guest),
                built_and_compiled(partial(build_foreign_guest, keyvalue, relabel, guest)),
            )
        )
    return found + _EXTRA


_host: Host | None = None


def start() -> int:
    """Start every job in the background; returns how many.

    One pytest process works through the jobs on two threads. Under
    pytest-xdist each worker takes one thread and starts at its own share of
    the list, so the workers build different guests first (each job runs
    under a file lock: `background.share_between_processes`).
    """
    global _host
    _host = Host({"default": "memory:"}, cache_dir=COMPILE_CACHE)
    found = jobs(_host)
    worker, count = _xdist_worker()
    if count == 1:
        return background.start(found, workers=2)
    first = len(found) * worker // count
    return background.start(found[first:] + found[:first], workers=1)


def _xdist_worker() -> tuple[int, int]:
    """(index, count) of this pytest-xdist worker; (0, 1) outside pytest-xdist."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not name.startswith("gw"):
        return 0, 1
    return int(name[2:]), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))


def compile_into_cache(wasm: Path) -> None:
    """Compile `wasm` into the tests' compile cache, as `wasikv` processes of the tests find it.

    Jobs call this rather than open a Host of their own: a Host takes its
    cache key file from the environment, which tests running meanwhile may
    have patched (tests/test_compile_cache.py does).
    """
    if _host is not None:
        _host.load(wasm)
        return
    with Host({"default": "memory:"}, cache_dir=COMPILE_CACHE) as host:
        host.load(wasm)


def stop() -> None:
    """Wait for the running jobs (the rest are dropped) and close the compiling host."""
    global _host
    background.stop()
    if _host is not None:
        _host.close()
        _host = None
