"""Shared fixtures: a guest builder and hosts whose stores live in the test's tmp dir."""

from __future__ import annotations

import os
import signal
import types
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from wasikv import Host, Limits

from . import background, prebuild
from .backends import BACKEND_NAMES, private_store_url
from .support import BUILDERS, CACHE, COMPILE_CACHE, guest_wasm


def pytest_configure(config: pytest.Config) -> None:
    """Let the `wasikv` processes tests start load what the suite compiled (tests that test the
    cache set their own directory), and test processes share their guest builds."""
    os.environ.setdefault("WASIKV_CACHE_DIR", str(COMPILE_CACHE))
    # The tests press Ctrl-C (SIGINT) in `wasikv` processes as a terminal
    # would. A suite started in the background (`make test &`, a CI runner)
    # has SIGINT ignored, which every child would inherit and so never see
    # the Ctrl-C: handled here, children start with SIGINT at its default.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # pytest-xdist workers (make test) build each guest once between them.
    background.share_between_processes(CACHE / "locks")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark `component` every test that reaches a guest builder (`make test-fast` skips those);
    under `make test`, run them last and start the builds they need in the background.

    A test reaches one when its function, one of its fixtures (their
    dependencies included), or a test-suite function any of those call
    names a function of `support.BUILDERS`. What this misses (a build behind
    a subprocess, say) fails loudly under `make test-fast`, which forbids
    builds (tests/no_build/sitecustomize.py): mark such tests by hand.
    """
    verdicts: dict[object, bool] = {}
    for item in items:
        if not isinstance(item, pytest.Function) or item.get_closest_marker("component"):
            continue
        funcs: list[object] = [item.function]
        for name in item.fixturenames:
            funcs.extend(d.func for d in item._fixtureinfo.name2fixturedefs.get(name, ()))
        if any(_reaches_builder(func, verdicts) for func in funcs):
            item.add_marker(pytest.mark.component)
    if not prebuild.enabled():
        return
    # The tests that need no component first, while the components build
    # (tests/prebuild.py); sorted() keeps each group's order.
    items[:] = sorted(items, key=lambda item: item.get_closest_marker("component") is not None)
    if any(item.get_closest_marker("component") for item in items):
        started = prebuild.start()
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"{started} guest builds and compiles started in the background")


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Let the background builds still running finish (tests/prebuild.py)."""
    prebuild.stop()


def _reaches_builder(func: object, verdicts: dict[object, bool]) -> bool:
    func = getattr(func, "__func__", func)
    func = getattr(func, "__wrapped__", func)  # functools.cache and other decorators
    if not isinstance(func, types.FunctionType):
        return False
    if func in verdicts:
        return verdicts[func]
    verdicts[func] = False  # recursion ends here
    names: set[str] = set()
    codes = [func.__code__]
    while codes:
        code = codes.pop()
        names.update(code.co_names)
        codes.extend(const for const in code.co_consts if isinstance(const, types.CodeType))
    callees = (func.__globals__.get(name) for name in names)
    verdict = bool(names & BUILDERS) or any(
        _reaches_builder(callee, verdicts)
        for callee in callees
        if callable(callee) and str(getattr(callee, "__module__", "")).startswith("tests.")
    )
    verdicts[func] = verdict
    return verdict


@pytest.fixture(scope="session")
def build_guest() -> Callable[[str], Path]:
    """Build (or reuse) a guest component by directory name."""
    return guest_wasm


@pytest.fixture(params=BACKEND_NAMES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of each backend, private to the test (see tests/backends.py)."""
    with private_store_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def make_host(tmp_path: Path) -> Iterator[Callable[..., Host]]:
    """A factory of hosts whose stores live in this test's temporary directory."""
    hosts: list[Host] = []

    def make(stores: Mapping[str, str] | None = None, limits: Limits | None = None) -> Host:
        host = Host(
            stores if stores is not None else {"default": f"sqlite:{tmp_path / 'default.db'}"},
            limits=limits,
            cache_dir=COMPILE_CACHE,
        )
        hosts.append(host)
        return host

    yield make
    for host in hosts:
        host.close()
