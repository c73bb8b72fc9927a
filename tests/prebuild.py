"""Build the suite's guest components before the tests run, several at a time.

componentize-py builds one component per process on one core, and a fresh
clone needs about twenty of them: built one by one as tests first reach
them, they were most of a fresh `make test`. `make test` sets
`WASIKV_PREBUILD=1`, and `tests/conftest.py` then builds every component
listed here concurrently (and compiles each into the tests' compile cache)
before the first test. A component missing from the lists is still built,
on first use, as before.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from wasikv import ComponentError, Host

from .support import COMPILE_CACHE, foreign_guest_wasm, guest_wasm

_HTTP = "wasikv:app/http-trigger"
_WATCH = "wasikv:app/watch-trigger"
_SDK = "wasikv:app/sdk"
_DRAFT = "keyvalue-0.2.0-draft"
_UPSTREAM = "keyvalue-0.2.0-draft2-upstream"

#: `guest_wasm` arguments: (name, world, module); None for the defaults.
GUESTS: tuple[tuple[str, str | None, str | None], ...] = (
    ("probe", None, None),
    ("conformance", None, None),
    ("sdk", None, None),
    ("primitives", None, None),
    ("hostile", _SDK, None),
    ("http_probe", _HTTP, None),
    ("watch_probe", _WATCH, None),
    ("examples/counter", None, None),
    ("examples/http-counter", _HTTP, None),
    ("examples/todo", _HTTP, "api"),
    ("examples/todo", _HTTP, "report"),
    ("examples/watch-audit", _HTTP, "notes"),
    ("examples/watch-audit", _WATCH, "audit"),
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


def _jobs() -> list[Callable[[], Path]]:
    jobs: list[Callable[[], Path]] = []
    for name, world, module in GUESTS:
        kwargs = {k: v for k, v in (("world", world), ("module", module)) if v is not None}
        jobs.append(lambda name=name, kwargs=kwargs: guest_wasm(name, **kwargs))
    for keyvalue, relabel, guest in FOREIGN:
        jobs.append(lambda kv=keyvalue, r=relabel, g=guest: foreign_guest_wasm(*kv, relabel=r, name=g))
    return jobs


def prebuild(workers: int | None = None) -> tuple[int, float]:
    """Build and compile every listed component; returns (how many, seconds)."""
    started = time.monotonic()
    jobs = _jobs()
    with Host({"default": "memory:"}, cache_dir=COMPILE_CACHE) as host:

        def build_and_compile(job: Callable[[], Path]) -> None:
            wasm = job()  # a failed build fails the run here
            try:
                host.load(wasm)
            except ComponentError:
                pass  # refused by design: the guests that lie about their imports' types

        with ThreadPoolExecutor(workers or max(2, os.cpu_count() or 1)) as pool:
            # list(): re-raise the first build failure here, naming the guest.
            list(pool.map(build_and_compile, jobs))
    return len(jobs), time.monotonic() - started
