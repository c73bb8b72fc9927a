"""The primitives inside a real component: every primitive's behaviour as a guest sees it."""

from __future__ import annotations

import time
from typing import Any

import pytest

from wasikv import Host

from ..support import COMPILE_CACHE, run_in


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    db = tmp_path_factory.mktemp("guest") / "suite.db"
    with Host({"default": f"sqlite:{db}"}, cache_dir=COMPILE_CACHE) as host:
        run = run_in(host, "primitives", ["suite"])
    assert run.exit_code == 0, run.stdout + run.stderr
    data: dict[str, Any] = run.json()
    return data


def test_clock_in_a_guest(suite: dict[str, Any]) -> None:
    clock = suite["clock"]
    assert abs(clock["wall"] - time.time()) < 3600  # wasi:clocks wall clock is the host's
    assert clock["slept_wall"] >= 0.045 and clock["slept_mono"] >= 0.045  # time.sleep really waits


def test_counters_in_a_guest(suite: dict[str, Any]) -> None:
    assert suite["counters"] == {
        "missing": 0,
        "set": 10,
        "increment": 11,
        "increment_5": 16,
        "get_increment": 16,
        "get_increment_3": 17,
        "get_set": 20,
        "get": -4,
        "raw": "-4",
        "all": {"guest/c": -4},
    }


def test_locks_in_a_guest(suite: dict[str, Any]) -> None:
    assert suite["locks"] == {
        "release_unheld": "NotLockOwner",
        "locked": True,
        "owned": True,
        "timeout": "LockTimeout",
        "exists": "LockExists",
        "other_takes_over": True,
        "stale_release": "NotLockOwner",
        "fences": [1, 2],
        "locked_after": False,
        "context_owned": True,
    }


def test_state_in_a_guest(suite: dict[str, Any]) -> None:
    assert suite["state"] == {
        "locks": {"a": "alice", "b": "alice"},
        "bob_locked_out": ["b"],
        "bob_got_c": False,
        "bob_update": "ResourceLockedError",
        "version": 1,
        "content": {"a": 1, "b": [1, 2]},
        "change": {"updates": {"a": 1, "b": [1, 2]}, "removals": []},
        "change2": {"updates": {"z": True}, "removals": ["a"]},
        "too_big": "StoreError",
        "version_after_too_big": 2,
    }


def test_cache_in_a_guest(suite: dict[str, Any]) -> None:
    assert suite["cache"] == {
        "first": {"answer": 42},
        "second": {"answer": 42},
        "calls": 1,
        "error": ["ZeroDivisionError", "no"],
        "get": {"answer": 42},
        "list": ["bad", "k", "other/1"],
        "removed": 1,
        "list_after": ["bad", "k"],
        "other_scope": [],
        "cleared": 2,
    }
