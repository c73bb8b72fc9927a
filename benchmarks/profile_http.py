"""Where a request's CPU goes: `perf` on `wasikv up` under the HTTP bench load.

`python -m benchmarks.profile_http` (`make profile`) serves
examples/http-counter with one process, drives the same load as `make bench`
while `perf record` samples the server, and splits the server's CPU per
request by where the samples landed:

- memory reset: `memmove`/`memset`, which is how wasmtime's pooling
  allocator restores a slot's kept-resident linear memory to the
  component's initial image after an instance;
- wasmtime: instantiating and dropping instances (linking, function
  references), everything in libwasmtime;
- guest: the component's own compiled wasm (perf's `[JIT]` maps);
- Python: the interpreter, ctypes and libffi: event loop, HTTP parsing,
  ASGI, the host functions and value conversion;
- kernel: syscalls, scheduling, page faults; SQLite: the store.

Needs `perf` and permission to profile (root or perf_event_paranoid <= 1);
without them it says so and exits 1.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from wasikv.build.guest_build import build_cached

from . import http

CATEGORIES = (
    (
        "memory reset (memmove/memset)",
        lambda dso, sym: "libc" in dso and ("memmove" in sym or "memset" in sym),
    ),
    ("wasmtime (instantiate, drop)", lambda dso, sym: "wasmtime" in dso),
    ("guest wasm", lambda dso, sym: dso.startswith("[JIT]")),
    (
        "Python (loop, HTTP, ASGI, host calls)",
        lambda dso, sym: "python" in dso or "ctypes" in dso or "ffi" in dso,
    ),
    ("kernel", lambda dso, sym: dso == "[kernel.kallsyms]"),
    ("SQLite", lambda dso, sym: "sqlite" in dso),
)


def _category(dso: str, sym: str) -> str:
    for name, matches in CATEGORIES:
        if matches(dso, sym):
            return name
    return "other (libc, asyncio, ...)"


def profile(connections: int = 16, per_connection: int = 250) -> dict[str, float]:
    """Milliseconds of server CPU per request, by category; also the total."""
    perf = shutil.which("perf")
    if perf is None:
        raise SystemExit("perf is not installed")
    wasm = build_cached(http.ROOT / "examples" / "http-counter", http.CACHE / "guests", world=http.WORLD)
    with tempfile.TemporaryDirectory() as tmp:
        app = Path(tmp)
        shutil.copy(wasm, app / "app.wasm")
        shutil.copy(http.ROOT / "examples" / "http-counter" / "wasikv.toml", app / "wasikv.toml")
        port = http.free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "wasikv", "up", "--listen", f"127.0.0.1:{port}"],
            cwd=app,
            env={**os.environ, "WASIKV_CACHE_DIR": str(http.CACHE / "compiled")},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        data = app / "perf.data"
        try:
            http.wait_for(port)
            asyncio.run(http._load(port, *http.WARM_UP))
            recorder = subprocess.Popen(
                [perf, "record", "-F", "997", "-o", str(data), "-p", str(server.pid)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            time.sleep(0.5)
            if recorder.poll() is not None:
                raise SystemExit(
                    f"perf record failed: {recorder.stderr.read().decode() if recorder.stderr else ''}"
                )
            figures = http.drive(port, server.pid, connections, per_connection)
            recorder.send_signal(2)
            recorder.wait(60)
        finally:
            server.terminate()
            server.wait(30)
        report = subprocess.run(
            [perf, "report", "-i", str(data), "--stdio", "--no-children", "--sort", "dso,sym", "-g", "none"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    shares: dict[str, float] = defaultdict(float)
    for line in report.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        percent, rest = line.split(None, 1)
        dso, _, sym = rest.partition("  ")
        shares[_category(dso.strip(), sym)] += float(percent.rstrip("%"))
    total_ms = figures["cpu_ms_per_request"]
    # perf's rounded percentages do not add up to exactly 100.
    counted = sum(shares.values())
    result = {name: total_ms * share / counted for name, share in shares.items()}
    result["total"] = total_ms
    return result


def main() -> int:
    result = profile()
    total = result.pop("total")
    print(f"server CPU per request: {total:.2f} ms")
    for name, ms in sorted(result.items(), key=lambda item: -item[1]):
        print(f"  {name:<40} {ms:5.2f} ms  {ms / total * 100:4.0f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
