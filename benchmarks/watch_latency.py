"""Watcher delivery latency: from a committed write to the watcher's `on-set` having returned.

For each store a `WatchRunner` follows the default store with a watcher that
does nothing (tests/guests/watch_noop). Each sample writes one key from host
Python code and waits until the runner has delivered it; a random pause
before each write spreads writes over the SQLite poll cycle. Also measured:
the cost of one delivery (fresh instance + one `on-set` call) and the
throughput of a runner catching up on a backlog (64 changes per instance).

`measure()` returns the figures as a dict; `python -m benchmarks.watch_latency`
prints them as JSON.
"""

from __future__ import annotations

import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from wasikv import Host
from wasikv.guest_build import build_cached
from wasikv.stores.base import Change
from wasikv.triggers.watch import WatcherComponent, WatchRunner

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".wasikv-test"
WORLD = "wasikv:app/watch-trigger"


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def _measure_store(wasm: Path, url: str, samples: int, backlog: int, poll_interval: float) -> dict[str, Any]:
    with Host({"default": url}, cache_dir=CACHE / "compiled") as host:
        watcher = WatcherComponent(host, host.load(wasm), "default", name="noop")
        watcher.deliver([Change(0, "warm-up", b"x")])
        started = time.perf_counter()
        for i in range(20):
            watcher.deliver([Change(i, "k", b"v" * 100)])
        deliver_one = (time.perf_counter() - started) / 20

        runner = WatchRunner(watcher, poll_interval=poll_interval)
        runner.start()
        bucket = host.bucket()
        store = bucket.store
        rng = random.Random(7)
        latencies: list[float] = []
        try:
            for i in range(samples):
                time.sleep(rng.uniform(0, poll_interval))
                started = time.perf_counter()
                bucket.set(f"k{i % 10}", b"v" * 100)
                if not runner.wait_for(store.last_change(), 30):
                    raise RuntimeError("the watcher did not deliver within 30 s")
                latencies.append(time.perf_counter() - started)
            # Throughput: one batch write of `backlog` keys, then wait until all are delivered.
            started = time.perf_counter()
            store.set_many([(f"b{i}", b"v" * 100) for i in range(backlog)])
            if not runner.wait_for(store.last_change(), 300):
                raise RuntimeError("the watcher did not catch up within 300 s")
            elapsed = time.perf_counter() - started
        finally:
            runner.stop()
    return {
        "poll_interval_ms": _ms(poll_interval) if not store.change_notifications else None,
        "latency_p50_ms": _ms(statistics.median(latencies)),
        "latency_p90_ms": _ms(_percentile(latencies, 0.9)),
        "latency_p99_ms": _ms(_percentile(latencies, 0.99)),
        "latency_max_ms": _ms(max(latencies)),
        "deliver_one_ms": _ms(deliver_one),
        "backlog_changes_per_s": round(backlog / elapsed),
        "samples": samples,
    }


def measure(samples: int = 100, backlog: int = 2000, poll_interval: float = 0.05) -> dict[str, Any]:
    """Watcher delivery figures for the memory and SQLite stores."""
    wasm = build_cached(ROOT / "tests" / "guests" / "watch_noop", CACHE / "guests", world=WORLD)
    with tempfile.TemporaryDirectory() as directory:
        return {
            "memory": _measure_store(wasm, "memory:", samples, backlog, poll_interval),
            "sqlite": _measure_store(
                wasm, f"sqlite:{Path(directory) / 'watch.db'}", samples, backlog, poll_interval
            ),
        }


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
