"""Fixtures for the primitives tests: real stores (memory, SQLite, Redis) and real processes."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from wasikv import Bucket, Host, Limits, open_store
from wasikv.stores.base import Store

from ..backends import BACKEND_NAMES, private_store_url
from ..redis_support import REDIS_HOST, REDIS_PORT, TEST_DB, delete_prefix, require_redis, unique_prefix
from ..support import COMPILE_CACHE, ROOT, suite_wasm

OpenBucket = Callable[[str], Bucket]


@pytest.fixture
def open_bucket() -> Iterator[OpenBucket]:
    """Open a host-side bucket on a store URL; every store is closed after the test."""
    stores: list[Store] = []

    def opener(url: str) -> Bucket:
        store = open_store(url)
        stores.append(store)
        return Bucket("default", store, Limits())

    yield opener
    for store in stores:
        store.close()


def redis_store_missing() -> str | None:
    """Why the Redis store cannot be imported (its `redis` client is an optional dependency), or None."""
    try:
        from wasikv.stores.redis import RedisStore  # noqa: F401
    except ImportError as exc:
        return f"the Redis store (wasikv.stores.redis.RedisStore) cannot be imported: {exc}"
    return None


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis store URL with a prefix of its own, emptied afterwards; skips (fails in CI) without Redis."""
    missing = redis_store_missing()
    if missing is not None:
        pytest.skip(missing)
    require_redis()
    prefix = unique_prefix()
    yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{TEST_DB}?prefix={prefix}"
    delete_prefix(prefix)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:{tmp_path / 'shared.db'}"


@pytest.fixture(params=BACKEND_NAMES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each backend in turn, private to the test (see tests/backends.py)."""
    if request.param == "redis" and (missing := redis_store_missing()) is not None:
        pytest.skip(missing)
    with private_store_url(request.param, tmp_path, "unit.db") as url:
        yield url


@pytest.fixture
def bucket(store_url: str, open_bucket: OpenBucket) -> Bucket:
    return open_bucket(store_url)


# -- processes ---------------------------------------------------------------------------------------


def spawn_worker(mode: str, url: str, *args: str) -> subprocess.Popen[str]:
    """A host-side worker process (tests/primitives/workers.py)."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.primitives.workers", mode, url, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@functools.cache
def primitives_guest() -> Path:
    """The command guests' component (run as `primitives`), built and compiled once.

    Compiling here first keeps several processes started at once from each
    compiling the same component.
    """
    wasm = suite_wasm()
    with Host({}, cache_dir=COMPILE_CACHE) as host:
        host.load(wasm)
    return wasm


def spawn_guest(url: str, *args: str) -> subprocess.Popen[str]:
    """`python -m wasikv run` of the primitives guest on the store at `url`."""
    wasm = str(primitives_guest())
    command = [sys.executable, "-m", "wasikv", "run", "--store", f"default={url}", wasm, "primitives"]
    return subprocess.Popen(
        [*command, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "WASIKV_CACHE_DIR": str(COMPILE_CACHE)},
    )


def finish(processes: list[subprocess.Popen[str]], timeout: float = 120) -> list[Any]:
    """Wait for every process; each must exit 0. Returns the JSON of each one's last stdout line."""
    results = []
    for proc in processes:
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{out}\nstderr:\n{err}"
        lines = [line for line in out.splitlines() if line.strip()]
        assert lines, f"no output; stderr:\n{err}"
        results.append(json.loads(lines[-1]))
    return results


def first_line(proc: subprocess.Popen[str]) -> Any:
    """The first stdout line of a running process, as JSON (it blocks until the line arrives)."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=30)
        assert proc.stderr is not None
        raise AssertionError(f"process exited {proc.returncode} before reporting:\n{proc.stderr.read()}")
    return json.loads(line)


@pytest.fixture
def reaper() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes put here are killed (by their own pid) if still running after the test."""
    running: list[subprocess.Popen[str]] = []
    yield running
    for proc in running:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)
