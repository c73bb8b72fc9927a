"""Memory: a guest cannot grow past its cap, nor make the host hold memory for it."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from wasikv import Host, InstancePool, Limits

from ..support import COMPILE_CACHE
from .conftest import run_wasikv


def _report(host: Host, wasm: Path, mode: str) -> dict[str, object]:
    out = io.BytesIO()
    assert host.run(wasm, [mode], stdout=out, stderr=io.BytesIO(), timeout=60) == 0
    report: dict[str, object] = json.loads(out.getvalue())
    return report


@pytest.mark.parametrize("pooled", [False, True], ids=["default-allocator", "instance-pool"])
@pytest.mark.parametrize("cap_mib", [64, 256])
def test_allocation_past_the_cap_is_a_memory_error_in_the_guest(
    hostile_wasm: Path, pooled: bool, cap_mib: int
) -> None:
    limits = Limits(max_memory_bytes=cap_mib << 20)
    pool = InstancePool(max_instances=4) if pooled else None
    with Host({"default": "memory:"}, limits=limits, cache_dir=COMPILE_CACHE, instance_pool=pool) as host:
        report = _report(host, hostile_wasm, "alloc")
        assert report["memory_error"] is True
        # The guest starts with some memory of its own, then gets MiB blocks until the cap.
        assert cap_mib - 48 < report["allocated_mib"] < cap_mib  # type: ignore[operator]
        # The refusal is the guest's: the same host runs the next guest normally.
        assert _report(host, hostile_wasm, "ok") == {"ok": True}


def test_the_cli_takes_max_memory(hostile_wasm: Path, tmp_path: Path) -> None:
    done = run_wasikv("run", "--max-memory", "96", str(hostile_wasm), "alloc", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert 48 < json.loads(done.stdout)["allocated_mib"] < 96


def test_a_component_that_needs_more_than_the_cap_to_start_is_refused(hostile_wasm: Path) -> None:
    from wasikv import ComponentError

    with Host(
        {"default": "memory:"}, limits=Limits(max_memory_bytes=1 << 20), cache_dir=COMPILE_CACHE
    ) as host:
        with pytest.raises(ComponentError, match="cannot instantiate"):
            host.run(hostile_wasm, ["ok"])


_CAS_SCRIPT = """
import io, json, resource, sys
from wasikv import Host
def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
wasm, db, cache = sys.argv[1:]
with Host({"default": "sqlite:" + db}, cache_dir=cache) as host:
    host.bucket().set("big", bytes(range(256)) * 4096)
    host.run(wasm, ["ok"], stdout=io.BytesIO())
    before = peak()
    out = io.BytesIO()
    host.run(wasm, ["cas"], stdout=out)
    print(json.dumps({"report": json.loads(out.getvalue()), "grown_mib": peak() - before}))
"""


def test_cas_handles_pin_versions_not_copies(hostile_wasm: Path, tmp_path: Path) -> None:
    # 1024 handles on a 1 MiB value used to hold 1.1 GiB in the host (measured
    # here: the growth of a fresh process's peak RSS). What remains is the
    # guest's own memory and wasmtime's transient copies of three 1 MiB
    # `current` results (32 bytes per byte).
    done = subprocess.run(
        [sys.executable, "-c", _CAS_SCRIPT, str(hostile_wasm), str(tmp_path / "kv.db"), str(COMPILE_CACHE)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    report = outcome["report"]
    assert report["handles"] == 1024
    assert "open cas handle limit" in str(report["error"])
    assert report["value_sizes"] == [1 << 20]
    assert outcome["grown_mib"] < 256, f"peak RSS grew by {outcome['grown_mib']:.0f} MiB for 1024 cas handles"
