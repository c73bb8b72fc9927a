"""What wasikv's Python `wasi:http` layer costs: one `wasikv_sdk` app built for both HTTP worlds.

tests/guests/portable is built twice from the same source: for
`wasikv:app/http-trigger` (the request and response cross as one record,
the body as one `list<u8>`) and for `wasikv:app/proxy` (the standard
`wasi:http/incoming-handler`, served through wasikv's Python `wasi:io` and
`wasi:http/types`, the body in 64 KiB stream reads and 4 KiB writes). Each
is called in-process, a fresh instance per request as `wasikv up` does,
without the HTTP server: what differs between the two rows is the layer.

Two requests: `POST /counter` (one `increment`, a few bytes back) and
`POST /echo` with a 1 MiB body echoed back.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path
from typing import Any

from wasikv import Host
from wasikv.build.guest_build import build_cached
from wasikv.triggers.http_app import http_component
from wasikv.triggers.http_component import HttpRequest

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".wasikv-test"
GUEST = ROOT / "tests" / "guests" / "portable"
#: The worlds compared, by the label their rows carry.
WORLDS = {
    "record (wasikv:app/http-trigger)": "wasikv:app/http-trigger",
    "proxy (wasikv:app/proxy)": "wasikv:app/proxy",
}
BODY = bytes(range(256)) * 4096  # 1 MiB
#: Requests per figure, after as many again to warm up: (simple, 1 MiB).
RUNS = (300, 20)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _per_request(handle: Any, request: HttpRequest, runs: int, check: Any) -> dict[str, float]:
    """Wall and CPU milliseconds per `handle(request)`, best of three rounds of `runs`."""
    for _ in range(runs):
        check(handle(request))
    walls, cpus = [], []
    for _ in range(3):
        cpu, wall = _cpu(), time.perf_counter()
        for _ in range(runs):
            handle(request)
        walls.append((time.perf_counter() - wall) * 1000 / runs)
        cpus.append((_cpu() - cpu) * 1000 / runs)
    return {"wall_ms": min(walls), "cpu_ms": min(cpus)}


def _check_counter(response: Any) -> None:
    assert response.status == 200 and response.body.strip().isdigit(), response


def _check_echo(response: Any) -> None:
    assert response.status == 200 and response.body.endswith(BODY), (response.status, len(response.body))


def measure() -> dict[str, Any]:
    """Per-request wall and CPU time of both builds for both requests, and the proxy's extra CPU."""
    simple, big = RUNS
    rows: dict[str, dict[str, Any]] = {}
    with Host({"default": "memory:"}, cache_dir=CACHE / "compiled") as host:
        for label, world in WORLDS.items():
            wasm = build_cached(GUEST, CACHE / "guests", world=world)
            component = http_component(host, host.load(wasm), name="portable")
            counter = HttpRequest("POST", "/counter", [("host", "bench")], b"")
            echo = HttpRequest("POST", "/echo", [("host", "bench")], BODY)
            rows[label] = {
                "world": world,
                "counter": _per_request(component.handle, counter, simple, _check_counter),
                "echo_1mib": _per_request(component.handle, echo, big, _check_echo),
            }
    record, proxy = (rows[label] for label in WORLDS)
    return {
        "rows": rows,
        "proxy_extra_cpu_ms": proxy["counter"]["cpu_ms"] - record["counter"]["cpu_ms"],
        "echo_1mib_proxy_vs_record": proxy["echo_1mib"]["wall_ms"] / record["echo_1mib"]["wall_ms"],
    }


def print_table(figures: dict[str, Any]) -> None:
    """The two builds side by side, per request, in-process."""
    print("one wasikv_sdk app (tests/guests/portable) built for each HTTP world; in-process, fresh instances")
    print(f"{'world':<36} {'POST /counter':>22} {'POST /echo, 1 MiB':>24}")
    for label, row in figures["rows"].items():
        counter, echo = row["counter"], row["echo_1mib"]
        print(
            f"{label:<36} {counter['wall_ms']:>6.2f} ms ({counter['cpu_ms']:.2f} CPU)"
            f" {echo['wall_ms']:>8.1f} ms ({echo['cpu_ms']:.1f} CPU)"
        )
    print(
        f"  the Python wasi:http layer: {figures['proxy_extra_cpu_ms']:+.2f} ms CPU per simple request;"
        f" a 1 MiB echo takes {figures['echo_1mib_proxy_vs_record']:.2f}x the record world's time"
    )


if __name__ == "__main__":
    print_table(measure())
