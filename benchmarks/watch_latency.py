"""Watcher delivery latency: from a committed write to the watcher's `on-set` having returned.

For each store (memory, SQLite, and Redis when one answers on
127.0.0.1:6379) a `WatchRunner` follows the default store with a watcher that
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
import uuid
from pathlib import Path
from typing import Any

from wasikv import Host
from wasikv.build.guest_build import build_cached
from wasikv.stores.base import Change
from wasikv.triggers.watch import WatcherComponent, WatchRunner

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".wasikv-test"
WORLD = "wasikv:app/watch-trigger"
REDIS_ADDRESS = ("127.0.0.1", 6379)


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
        "wake_up": "notification" if store.change_notifications else f"poll every {_ms(poll_interval)} ms",
        "latency_p50_ms": _ms(statistics.median(latencies)),
        "latency_p90_ms": _ms(_percentile(latencies, 0.9)),
        "latency_p99_ms": _ms(_percentile(latencies, 0.99)),
        "latency_max_ms": _ms(max(latencies)),
        "deliver_one_ms": _ms(deliver_one),
        "backlog_changes_per_s": round(backlog / elapsed),
        "samples": samples,
    }


def _redis_url() -> tuple[str | None, str]:
    """A Redis URL under a fresh prefix on the local server (db 15), or None and why not."""
    try:
        import redis
    except ImportError:
        return None, "redis-py is not installed"
    host, port = REDIS_ADDRESS
    client = redis.Redis(host, port, db=15, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        return None, f"no Redis at {host}:{port}: {exc}"
    finally:
        client.close()
    prefix = f"wasikv-bench:{uuid.uuid4().hex}:"
    return f"redis://{host}:{port}/15?prefix={prefix}", prefix


def _drop_prefix(prefix: str) -> None:
    import redis

    client = redis.Redis(*REDIS_ADDRESS, db=15)
    try:
        names = list(client.scan_iter(match=prefix.encode() + b"*"))
        if names:
            client.delete(*names)
    finally:
        client.close()


def measure(samples: int = 100, backlog: int = 2000, poll_interval: float = 0.05) -> dict[str, Any]:
    """Watcher delivery figures for the memory, SQLite and (if one answers) Redis stores."""
    wasm = build_cached(ROOT / "tests" / "guests" / "watch_noop", CACHE / "guests", world=WORLD)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as directory:
        results["memory"] = _measure_store(wasm, "memory:", samples, backlog, poll_interval)
        sqlite_url = f"sqlite:{Path(directory) / 'watch.db'}"
        results["sqlite"] = _measure_store(wasm, sqlite_url, samples, backlog, poll_interval)
    url, prefix = _redis_url()
    if url is None:
        results["redis"] = {"skipped": prefix}
    else:
        try:
            results["redis"] = _measure_store(wasm, url, samples, backlog, poll_interval)
        finally:
            _drop_prefix(prefix)
    return results


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
