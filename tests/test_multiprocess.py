"""Several host processes sharing one SQLite file, and a host killed mid-write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from wasikv import SqliteStore

from .support import COMPILE_CACHE, conformance_in_processes, suite_wasm

pytestmark = pytest.mark.slow


def spawn_run(db: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "wasikv", "run", "--store", f"default=sqlite:{db}", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "WASIKV_CACHE_DIR": str(COMPILE_CACHE)},
    )


def stored(db: Path, key: str) -> bytes | None:
    store = SqliteStore(db)
    try:
        return store.get(key)
    finally:
        store.close()


def test_four_hosts_increment_one_counter(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    conformance_in_processes(f"sqlite:{db}", "counter-loop", 250)
    assert stored(db, "counter") == b"1000"


def test_four_hosts_cas_loops_on_one_key(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    reports = conformance_in_processes(f"sqlite:{db}", "cas-loop", 250)
    assert stored(db, "cas-counter") == b"1000"
    print("CAS retries per process:", reports)


def test_kill_9_loses_no_acknowledged_write(tmp_path: Path) -> None:
    db = tmp_path / "crash.db"
    proc = spawn_run(db, str(suite_wasm()), "conformance", "counter-ack", "1000000")
    assert proc.stdout is not None
    acknowledged = 0
    for line in proc.stdout:
        acknowledged = int(line)
        if acknowledged >= 200:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    final = int(stored(db, "counter") or b"0")
    assert final >= acknowledged >= 200
