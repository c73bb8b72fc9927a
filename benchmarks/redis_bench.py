"""Redis figures for `make bench`: guest calls on a Redis store vs redis-py directly.

Both sides talk to the same server in the same run; the ratio is the cost
wasikv adds (guest bindings, value conversion, versioned Lua writes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from wasikv import Host
from wasikv.build.guest_build import build_cached

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".wasikv-test"
SERVER = ("127.0.0.1", 6379, 15)
SMALL = bytes(range(100))


def available() -> bool:
    """Whether the benchmark Redis answers."""
    try:
        import redis

        redis.Redis(*SERVER[:2], db=SERVER[2], socket_connect_timeout=1).ping()
        return True
    except Exception:
        return False


def _direct(op: str, n: int) -> float:
    import redis

    client = redis.Redis(*SERVER[:2], db=SERVER[2])
    key = f"wasikv-bench-direct:{uuid.uuid4().hex}"
    client.set(key, SMALL)
    started = time.perf_counter()
    for _ in range(n):
        if op == "get":
            client.get(key)
        elif op == "set":
            client.set(key, SMALL)
        elif op == "increment":
            client.incrby(key + ":n", 1)
        else:  # an optimistic read-modify-write, the direct equivalent of a CAS cycle
            with client.pipeline() as pipe:
                pipe.watch(key)
                pipe.get(key)
                pipe.multi()
                pipe.set(key, SMALL)
                pipe.execute()
    elapsed = time.perf_counter() - started
    client.delete(key, key + ":n")
    client.close()
    return elapsed / n * 1e6


def measure(measure_wasikv: Any, bench: Path) -> dict[str, Any]:
    """Per-call cost through a guest vs redis-py, and 4 concurrent hosts on one key."""
    prefix = f"wasikv-bench:{uuid.uuid4().hex}:"
    url = f"redis://{SERVER[0]}:{SERVER[1]}/{SERVER[2]}?prefix={prefix}"
    rows = []
    try:
        for op, n in (("get", 3000), ("set", 3000), ("increment", 3000), ("cas", 1000)):
            rows.append(
                {"op": op, "wasikv_us": measure_wasikv(bench, url, op, n), "redis_py_us": _direct(op, n)}
            )
        hosts = _four_hosts(url)
    finally:
        _cleanup(prefix)
    return {"operations": rows, "four_hosts": hosts}


def _four_hosts(url: str, per_host: int = 1000) -> dict[str, Any]:
    wasm = build_cached(ROOT / "tests" / "guests" / "suite", CACHE / "guests", world="wasikv:app/sdk")
    env = {**os.environ, "WASIKV_CACHE_DIR": str(CACHE / "compiled")}
    # The suite guest's conformance command (tests/guests/suite/app.py).
    command = [sys.executable, "-m", "wasikv", "run", "--store", f"default={url}", str(wasm), "conformance"]
    # Compiled once beforehand: four processes compiling the same component
    # at once would be timed instead of the increments.
    subprocess.run([*command, "counter-loop", "0"], check=True, stdout=subprocess.DEVNULL, env=env)
    # Start the processes first, then time only the guest loops they report.
    procs = [
        subprocess.Popen(
            [*command, "counter-loop", str(per_host)], stdout=subprocess.PIPE, env=env, text=True
        )
        for _ in range(4)
    ]
    started = time.perf_counter()
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0
        assert json.loads(out.strip().splitlines()[-1])["error_count"] == 0
    elapsed = time.perf_counter() - started
    with Host({"default": url}, compile_cache=False) as host:
        final = int(host.bucket().get("counter") or b"0")
    return {
        "hosts": 4,
        "increments": 4 * per_host,
        "final_count": final,
        "seconds": elapsed,
        "ops_per_s_including_process_start": 4 * per_host / elapsed,
    }


def _cleanup(prefix: str) -> None:
    import redis

    client = redis.Redis(*SERVER[:2], db=SERVER[2])
    names = list(client.scan_iter(match=prefix + "*", count=1000))
    if names:
        client.delete(*names)
    client.close()
