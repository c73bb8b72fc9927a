"""Deep recursion: Python's own limit inside the guest, or a trap when the wasm stack overflows."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from wasikv import GuestTrap, Host

from ..support import COMPILE_CACHE


def test_recursion_is_a_recursion_error_in_the_guest(hostile_wasm: Path) -> None:
    with Host({"default": "memory:"}, cache_dir=COMPILE_CACHE) as host:
        out = io.BytesIO()
        assert host.run(hostile_wasm, ["recurse"], stdout=out, timeout=60) == 0
        assert json.loads(out.getvalue()) == {"recursion_error": True}


def test_a_stack_overflow_traps_the_guest_not_the_host(hostile_wasm: Path) -> None:
    with Host({"default": "memory:"}, cache_dir=COMPILE_CACHE) as host:
        for _ in range(3):
            with pytest.raises(GuestTrap, match=r"call stack exhausted|stack overflow"):
                host.run(hostile_wasm, ["overflow"], stdout=io.BytesIO(), stderr=io.BytesIO(), timeout=60)
        out = io.BytesIO()
        assert host.run(hostile_wasm, ["ok"], stdout=out) == 0
        assert json.loads(out.getvalue()) == {"ok": True}
