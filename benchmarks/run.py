"""`make bench`: wasikv's host against a generic-conversion host, measured in one run.

A benchmark guest times N calls of one operation from inside the component,
so the figures are the per-call cost of the host call path (guest bindings,
wasmtime, value conversion, store) without instantiation. Both hosts use the
memory store; SQLite figures for wasikv are shown for reference. Results are
printed as a table and written to .wasikv-test/bench.json.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from wasmtime import Engine
from wasmtime.component import Component

from tests.support import foreign_guest_wasm
from wasikv import Host, MemoryStore
from wasikv.build.guest_build import build_cached

from . import http, http_server, http_worlds, redis_bench, wasi_http, wasmtime_host, watch_latency
from .generic_host import GenericHost

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".wasikv-test"

# (operation, iterations on wasikv, iterations on the generic host)
OPERATIONS = [
    ("compute", 2000, 200),
    ("exists", 20000, 5000),
    ("get", 20000, 2000),
    ("set", 20000, 2000),
    ("increment", 20000, 5000),
    ("cas", 10000, 1000),
    ("get-many", 2000, 100),
    ("get-1mib", 30, 3),
    ("set-1mib", 30, 3),
]
LABELS = {
    "compute": "guest compute (no call)",
    "exists": "exists",
    "get": "get 100 B",
    "set": "set 100 B",
    "increment": "increment",
    "cas": "CAS new+current+swap",
    "get-many": "get-many 100 x 100 B",
    "get-1mib": "get 1 MiB",
    "set-1mib": "set 1 MiB",
}


def _per_call(output: bytes) -> float:
    return float(json.loads(output.decode().strip().splitlines()[-1])["us_per_call"])


class NoDeadlineHost(Host):
    """wasikv's host without epoch checks in guest code: the baseline of what deadlines cost."""

    _epoch_interruption = False


def measure_wasikv(wasm: Path, url: str, op: str, iterations: int, host_type: type[Host] = Host) -> float:
    """Microseconds per call of `op` on wasikv's host."""
    with host_type({"default": url}, cache_dir=CACHE / "compiled") as host:
        out = io.BytesIO()
        code = host.run(wasm, [op, str(iterations)], stdout=out)
        assert code == 0, f"bench guest failed on {op}"
        return _per_call(out.getvalue())


def measure_generic(engine: Engine, component: Component, op: str, iterations: int) -> float:
    """Microseconds per call of `op` on the generic-conversion host."""
    host = GenericHost(engine, MemoryStore())
    chunks: list[bytes] = []

    def collect(data: bytes) -> int:
        chunks.append(data)
        return len(data)

    host.run(component, ["bench.wasm", op, str(iterations)], collect)
    return _per_call(b"".join(chunks))


def measure_starts(counter: Path) -> dict[str, float]:
    """Cold (compile) and warm (cached) start of the counter command, in ms."""
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        with Host({"default": "memory:"}, cache_dir=Path(tmp) / "cache") as host:
            host.run(counter, stdout=io.BytesIO())
        cold = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        with Host({"default": "memory:"}, cache_dir=Path(tmp) / "cache") as host:
            host.run(counter, stdout=io.BytesIO())
        warm = (time.perf_counter() - started) * 1000
        with Host({"default": "memory:"}, cache_dir=Path(tmp) / "cache") as host:
            component = host.load(counter)
            runs = 50
            started = time.perf_counter()
            for _ in range(runs):
                host.run(component, stdout=io.BytesIO())
            per_run = (time.perf_counter() - started) * 1000 / runs
        cli_runs = []
        for _ in range(3):
            started = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "wasikv",
                    "run",
                    "--store",
                    "default=memory:",
                    "--cache-dir",
                    str(Path(tmp) / "cache"),
                    str(counter),
                ],
                check=True,
                capture_output=True,
            )
            cli_runs.append((time.perf_counter() - started) * 1000)
    return {"cold_ms": cold, "warm_ms": warm, "instantiate_and_run_ms": per_run, "cli_warm_ms": min(cli_runs)}


def main() -> int:
    bench = build_cached(ROOT / "tests" / "guests" / "bench", CACHE / "guests")
    counter = build_cached(ROOT / "examples" / "counter", CACHE / "guests")
    engine = Engine()
    component = Component(engine, bench.read_bytes())
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_url = f"sqlite:{Path(tmp) / 'bench.db'}"
        for op, ours_n, generic_n in OPERATIONS:
            # Alternated, best of three: the cost of epoch checks is a few
            # per cent, less than the drift of a busy machine.
            ours, unchecked = [], []
            for _ in range(3):
                ours.append(measure_wasikv(bench, "memory:", op, ours_n))
                unchecked.append(measure_wasikv(bench, "memory:", op, ours_n, NoDeadlineHost))
            generic = measure_generic(engine, component, op, generic_n)
            sqlite = measure_wasikv(bench, sqlite_url, op, max(ours_n // 10, 10))
            rows.append(
                {
                    "op": op,
                    "wasikv_us": min(ours),
                    "no_deadline_us": min(unchecked),
                    "generic_us": generic,
                    "sqlite_us": sqlite,
                }
            )
            print(f"  measured {op}", file=sys.stderr)
    starts = measure_starts(counter)
    print("  measured starts", file=sys.stderr)
    http_figures = {**http.measure_instantiate(), **http.measure()}
    print("  measured http", file=sys.stderr)
    scaling = http.measure_scaling()
    print("  measured http scaling", file=sys.stderr)
    serve_figures = wasi_http.measure()
    print("  measured wasmtime serve", file=sys.stderr)
    worlds = http_worlds.measure()
    print("  measured the HTTP worlds", file=sys.stderr)
    servers = http_server.measure()
    print("  measured the HTTP servers", file=sys.stderr)
    redis_figures = redis_bench.measure(measure_wasikv, bench) if redis_bench.available() else None
    print("  measured redis", file=sys.stderr)
    watch_figures = watch_latency.measure()
    print("  measured watchers", file=sys.stderr)
    native = wasmtime_host.measure(foreign_guest_wasm("keyvalue-0.2.0-draft"))
    print("  measured wasmtime's host", file=sys.stderr)

    print()
    header = ("operation", "wasikv (memory)", "no deadlines", "cost", "generic host", "speed-up", "sqlite")
    print(
        f"{header[0]:<24} {header[1]:>16} {header[2]:>13} {header[3]:>6} {header[4]:>13}"
        f" {header[5]:>9} {header[6]:>11}"
    )
    for row in rows:
        cost = (row["wasikv_us"] / row["no_deadline_us"] - 1) * 100
        print(
            f"{LABELS[row['op']]:<24} {_fmt(row['wasikv_us']):>16} {_fmt(row['no_deadline_us']):>13}"
            f" {cost:>+5.1f}% {_fmt(row['generic_us']):>13}"
            f" {row['generic_us'] / row['wasikv_us']:>8.1f}x {_fmt(row['sqlite_us']):>11}"
        )
    print()
    print(f"cold start (compile + run):      {starts['cold_ms']:8.0f} ms")
    print(f"warm start (cached, in-process): {starts['warm_ms']:8.1f} ms")
    print(f"instantiate + run (loaded):      {starts['instantiate_and_run_ms']:8.2f} ms")
    print(f"`wasikv run` process, warm:      {starts['cli_warm_ms']:8.0f} ms")
    print()
    print(
        f"HTTP (wasikv up, examples/http-counter, {http_figures['connections']} connections):"
        f" {http_figures['requests_per_s']:.0f} req/s, {http_figures['cpu_ms_per_request']:.2f} ms server CPU"
        f" per request, p50 {http_figures['p50_ms']:.1f} ms,"
        f" p99 {http_figures['p99_ms']:.1f} ms, count {http_figures['final_count']}"
        f" of {http_figures['expected_count']}"
    )
    print(
        f"per request in-process: instantiate {http_figures['instantiate_ms']:.2f} ms,"
        f" instantiate + handle {http_figures['instantiate_and_handle_ms']:.2f} ms"
    )
    print()
    print(f"{'wasikv up --processes':<24} {'req/s':>8} {'vs 1':>6} {'p50':>9} {'p99':>9} {'CPU/request':>12}")
    one = scaling[0]["requests_per_s"]
    for f in scaling:
        print(
            f"{f['processes']:<24} {f['requests_per_s']:>8.0f} {f['requests_per_s'] / one:>5.2f}x"
            f" {f['p50_ms']:>6.2f} ms {f['p99_ms']:>6.2f} ms {f['cpu_ms_per_request']:>9.2f} ms"
            f"  count {f['final_count']} of {f['expected_count']}"
        )
    print()
    wasi_http.print_table(http_figures, serve_figures)
    print()
    http_worlds.print_table(worlds)
    print()
    http_server.print_table(servers)
    if redis_figures is not None:
        print()
        print(f"{'redis operation':<24} {'wasikv guest':>14} {'redis-py':>10} {'ratio':>7}")
        for row in redis_figures["operations"]:
            print(
                f"{LABELS[row['op']]:<24} {_fmt(row['wasikv_us']):>14} {_fmt(row['redis_py_us']):>10}"
                f" {row['wasikv_us'] / row['redis_py_us']:>6.2f}x"
            )
        four = redis_figures["four_hosts"]
        print(
            f"4 hosts x {four['increments'] // 4} increments on one key: {four['final_count']}"
            f" (expected {four['increments']}), {four['ops_per_s_including_process_start']:.0f} ops/s"
            " including process start"
        )
    else:
        print("\nredis: no server at 127.0.0.1:6379, skipped")
    print()
    for store, figures in watch_figures.items():
        if "skipped" in figures:
            print(f"watcher delivery ({store}): skipped, {figures['skipped']}")
            continue
        print(
            f"watcher delivery ({store}, {figures['wake_up']}): p50 {figures['latency_p50_ms']} ms,"
            f" p90 {figures['latency_p90_ms']} ms, p99 {figures['latency_p99_ms']} ms"
        )
    print()
    if "skipped" in native:
        print(f"wasmtime's own host: skipped, {native['skipped']}")
    else:
        print(
            f"one 0.2.0-draft guest on {native['wasmtime']} (run -S keyvalue) and on wasikv, both in memory"
        )
        print(f"{'operation':<24} {'wasmtime (Rust)':>16} {'wasikv':>12} {'ratio':>7}")
        for row in native["operations"]:
            print(
                f"{LABELS[row['op']]:<24} {_fmt(row['wasmtime_us']):>16} {_fmt(row['wasikv_us']):>12}"
                f" {row['wasikv_us'] / row['wasmtime_us']:>6.1f}x"
            )
    results = {
        "operations": rows,
        "wasmtime_host": native,
        "starts": starts,
        "http": http_figures,
        "http_scaling": scaling,
        "wasmtime_serve": wasi_http.results(http_figures, serve_figures),
        "http_worlds": worlds,
        "http_servers": servers,
        "redis": redis_figures,
        "watch": watch_figures,
    }
    (CACHE / "bench.json").write_text(json.dumps(results, indent=2))
    return 0


def _fmt(us: float) -> str:
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.1f} us"


if __name__ == "__main__":
    sys.exit(main())
