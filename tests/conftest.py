"""Shared fixtures: a guest builder and hosts whose stores live in the test's tmp dir."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from wasikv import Host, Limits

from .backends import BACKEND_NAMES, private_store_url
from .support import COMPILE_CACHE, guest_wasm


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
