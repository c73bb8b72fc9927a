"""The Python server's share of a request: wasikv's hardened h11 server against the alternatives.

Issue 24 asks whether another HTTP/1.1 server would take less CPU per
request than `wasikv up`'s (uvicorn with `wasikv.server.serve`'s guarded h11
protocol). Each variant serves the same requests in the same run, driven by
benchmarks/http.py's load generator (`drive`), in rounds that alternate the
variants so that the drift of a shared machine falls on all of them:

- `h11 (wasikv up)`: uvicorn with wasikv's guarded h11 protocol, as `wasikv
  up` serves (header deadline, per-client cap, smuggling refusals): the baseline;
- `httptools (uvicorn)`: uvicorn's httptools (llhttp) protocol, with none of
  wasikv's guards: what switching could save at best, before they are added back;
- `granian`: the Rust ASGI server (hyper), one worker, its defaults (its own
  header read timeout, no per-client cap).

Two apps: a trivial ASGI handler (the server alone: its parser, event loop
and ASGI glue) and wasikv's real app serving examples/http-counter (the
same component as `make bench`'s HTTP figures), so that the server's share
of a real request shows. Every figure is also given as a ratio against the
h11 server's in the same run.

`python -m benchmarks.http_server` prints the table; `make bench` includes it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from wasikv.build.guest_build import build_cached

from . import http

#: Server variants, by the label of their rows; h11 first (the baseline of the ratios).
VARIANTS = ("h11 (wasikv up)", "httptools (uvicorn)", "granian")
BASELINE = VARIANTS[0]
#: The apps served, by label: the trivial handler, and wasikv serving examples/http-counter.
APPS = ("trivial ASGI handler", "wasikv app (http-counter)")
#: Rounds over every variant; each figure is the median of its rounds.
ROUNDS = 3
#: Load per round: (connections, requests per connection) for each app.
LOAD = {APPS[0]: (16, 250), APPS[1]: (16, 125)}
#: Where the server subprocess finds the app directory of a real-app run (granian's factory reads it).
APP_ENV = "WASIKV_BENCH_APP"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_BODY = b"1\n"
_HEADERS = [(b"content-type", b"text/plain"), (b"content-length", str(len(_BODY)).encode())]


async def trivial_app(scope: Scope, receive: Receive, send: Send) -> None:
    """An ASGI app that reads the request's body and answers 200 with two bytes: the server alone."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body", False):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _BODY})


def wasikv_app() -> Any:
    """wasikv's ASGI app for the manifest in `$WASIKV_BENCH_APP`, with `wasikv up`'s server headers."""
    from wasikv.server.asgi import create_app
    from wasikv.server.server_headers import ServerHeaders

    directory = Path(os.environ[APP_ENV])
    return ServerHeaders(create_app(directory / "wasikv.toml", cache_dir=http.CACHE / "compiled"))


def trivial_factory() -> Any:
    """`trivial_app`, for granian's `--factory`."""
    return trivial_app


def _serve_uvicorn(variant: str, port: int, app: Any) -> None:
    """Serve `app` with uvicorn as `wasikv.server.serve` configures it, but for the HTTP protocol."""
    import uvicorn

    from wasikv.server.serve import ServerLimits, _protocol

    limits = ServerLimits()
    protocol: Any = _protocol(limits) if variant == BASELINE else "httptools"
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        server_header=False,
        date_header=False,
        access_log=False,
        lifespan="on",
        log_level="warning",
        http=protocol,
        ws="none",
        timeout_keep_alive=int(limits.keep_alive_timeout),
        limit_concurrency=limits.max_connections,
    )
    uvicorn.Server(config).run()


def _server_command(variant: str, port: int, real: bool) -> list[str]:
    if variant == "granian":
        target = "benchmarks.http_server:" + ("wasikv_app" if real else "trivial_factory")
        return [
            sys.executable,
            "-m",
            "granian",
            "--interface",
            "asgi",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--runtime-threads",
            "1",
            "--no-ws",
            "--log-level",
            "warning",
            target,
        ]
    return [sys.executable, "-m", "benchmarks.http_server", "serve", variant, str(port)] + (
        ["real"] if real else []
    )


def available() -> list[str]:
    """The variants whose server is installed here (h11 always is)."""
    found = [BASELINE]
    if importlib.util.find_spec("httptools") is not None:
        found.append(VARIANTS[1])
    if importlib.util.find_spec("granian") is not None:
        found.append(VARIANTS[2])
    return found


def _measure_app(app_label: str, variants: list[str], app_dir: Path | None, rounds: int) -> dict[str, Any]:
    """Start one server per variant, then drive each in turn for `rounds` rounds."""
    connections, per_connection = LOAD[app_label]
    env = {**os.environ, "WASIKV_CACHE_DIR": str(http.CACHE / "compiled")}
    if app_dir is not None:
        env[APP_ENV] = str(app_dir)
    servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    samples: dict[str, list[dict[str, Any]]] = {variant: [] for variant in variants}
    try:
        for variant in variants:
            port = http.free_port()
            process = subprocess.Popen(
                _server_command(variant, port, app_dir is not None),
                cwd=http.ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            servers[variant] = (process, port)
            http.wait_for(port, variant)
        for _ in range(rounds):
            for variant in variants:
                process, port = servers[variant]
                samples[variant].append(http.drive(port, process.pid, connections, per_connection))
    finally:
        for process, _ in servers.values():
            process.terminate()
        for process, _ in servers.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    rows: dict[str, dict[str, float]] = {}
    for variant, runs in samples.items():
        rows[variant] = {
            key: statistics.median(run[key] for run in runs)
            for key in ("requests_per_s", "cpu_ms_per_request", "p50_ms", "p99_ms")
        }
    base = rows[BASELINE]
    for row in rows.values():
        row["requests_per_s_vs_h11"] = row["requests_per_s"] / base["requests_per_s"]
        row["cpu_vs_h11"] = row["cpu_ms_per_request"] / base["cpu_ms_per_request"]
    return {"connections": connections, "requests_per_round": connections * per_connection, "rows": rows}


def measure(rounds: int = ROUNDS) -> dict[str, Any]:
    """Each available variant serving the trivial handler, then wasikv's app, in one run."""
    variants = available()
    figures: dict[str, Any] = {"rounds": rounds, "apps": {}}
    figures["apps"][APPS[0]] = _measure_app(APPS[0], variants, None, rounds)
    wasm = build_cached(http.ROOT / "examples" / "http-counter", http.CACHE / "guests", world=http.WORLD)
    with tempfile.TemporaryDirectory() as tmp:
        app = Path(tmp)
        shutil.copy(wasm, app / "app.wasm")
        shutil.copy(http.ROOT / "examples" / "http-counter" / "wasikv.toml", app / "wasikv.toml")
        figures["apps"][APPS[1]] = _measure_app(APPS[1], variants, app, rounds)
    return figures


def print_table(figures: dict[str, Any]) -> None:
    """Per app, each server's req/s and CPU per request, and both as ratios against h11's."""
    print(f"HTTP servers side by side (median of {figures['rounds']} alternating rounds)")
    print(
        f"{'app':<28} {'server':<22} {'req/s':>8} {'vs h11':>7} {'CPU/request':>12} {'vs h11':>7}"
        f" {'p50':>8} {'p99':>8}"
    )
    for app, result in figures["apps"].items():
        for variant, row in result["rows"].items():
            print(
                f"{app:<28} {variant:<22} {row['requests_per_s']:>8.0f} {row['requests_per_s_vs_h11']:>6.2f}x"
                f" {row['cpu_ms_per_request']:>9.3f} ms {row['cpu_vs_h11']:>6.2f}x"
                f" {row['p50_ms']:>5.2f} ms {row['p99_ms']:>5.2f} ms"
            )


def _serve_main(argv: list[str]) -> int:
    variant, port = argv[0], int(argv[1])
    real = argv[2:] == ["real"]
    _serve_uvicorn(variant, port, wasikv_app() if real else trivial_app)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        sys.exit(_serve_main(sys.argv[2:]))
    result = measure(int(sys.argv[1]) if len(sys.argv) > 1 else ROUNDS)
    print_table(result)
