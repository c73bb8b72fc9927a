"""Metrics an operator can scrape: Prometheus, opt-in (`wasikv up --metrics ADDR`).

Everything lives in a registry of its own (never prometheus-client's global
one, which a service embedding wasikv may use for its own metrics):

- `wasikv_http_requests_total{route,status}` and
  `wasikv_http_request_duration_seconds{route,status}`: every request, by the
  manifest route that matched (`(none)` for 404s, so the label set stays
  bounded whatever clients send);
- `wasikv_instantiate_duration_seconds{component}`: creating a fresh instance;
- `wasikv_instances` (instances alive now, the pool's occupancy) and
  `wasikv_requests_waiting` (requests queued for a worker);
- `wasikv_workers_written_off_total` and `wasikv_workers_blocked`: request
  workers given up on because their guest was blocked in a host call past
  its deadline (each replaced by a fresh one), in all and still blocked now;
- `wasikv_store_operation_duration_seconds{store,operation}` and
  `wasikv_store_errors_total{store,operation}`: every store call guests and
  triggers make, by label;
- `wasikv_watcher_lag_changes{trigger}`: changes committed to a watched store
  that its trigger has not handled yet, read at scrape time.

prometheus-client is the `metrics` extra; without it `--metrics` is a
`ConfigError` saying how to install it. Under `--processes N` every process
writes its samples to a shared directory (prometheus-client's multiprocess
mode) and the supervisor serves their sum.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, StoreError
from .stores.base import Change, LeaseState, Store, Versioned
from .stores.registry import install_hint

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

log = logging.getLogger("wasikv")

# Request latencies from a millisecond to a minute.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Store calls are usually microseconds (memory, SQLite) to milliseconds (Redis, PostgreSQL).
_STORE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0)


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise ConfigError(
            f"--metrics needs prometheus-client; install it with {install_hint('metrics')}"
        ) from None
    return prometheus_client


class Metrics:
    """wasikv's metrics, in a registry of their own (`registry`)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        prometheus = _prometheus()
        self.registry: CollectorRegistry = registry or prometheus.CollectorRegistry()
        r = self.registry
        self.requests = prometheus.Counter(
            "wasikv_http_requests",
            "HTTP requests served, by route and status.",
            ["route", "status"],
            registry=r,
        )
        self.request_seconds = prometheus.Histogram(
            "wasikv_http_request_duration_seconds",
            "Time from a request's arrival to its response, by route and status.",
            ["route", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.instantiate_seconds = prometheus.Histogram(
            "wasikv_instantiate_duration_seconds",
            "Time to create a fresh instance of a component.",
            ["component"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.instances = prometheus.Gauge(
            "wasikv_instances", "Component instances alive now.", registry=r, multiprocess_mode="livesum"
        )
        self.instance_reuses = prometheus.Counter(
            "wasikv_instance_reuses",
            "Calls served by an instance kept from an earlier call (instance_reuse), by component.",
            ["component"],
            registry=r,
        )
        self.instances_retired = prometheus.Counter(
            "wasikv_instances_retired",
            "Reused instances retired, by component and reason (requests, idle, trap, timeout,"
            " error-response, memory, closed).",
            ["component", "reason"],
            registry=r,
        )
        self.waiting = prometheus.Gauge(
            "wasikv_requests_waiting",
            "Requests waiting for a worker.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.written_off = prometheus.Counter(
            "wasikv_workers_written_off",
            "Request workers given up on (and replaced): their guest was blocked in a host call past"
            " its deadline.",
            registry=r,
        )
        self.blocked_workers = prometheus.Gauge(
            "wasikv_workers_blocked",
            "Written-off workers whose guest is still blocked in a host call.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.store_seconds = prometheus.Histogram(
            "wasikv_store_operation_duration_seconds",
            "Time of store operations, by store label and operation.",
            ["store", "operation"],
            buckets=_STORE_BUCKETS,
            registry=r,
        )
        self.store_errors = prometheus.Counter(
            "wasikv_store_errors",
            "Store operations that failed, by label and operation.",
            ["store", "operation"],
            registry=r,
        )
        self.watcher_lag = prometheus.Gauge(
            "wasikv_watcher_lag_changes",
            "Changes committed to a watched store that the trigger has not handled yet.",
            ["trigger"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.watch_takeovers = prometheus.Counter(
            "wasikv_watch_takeovers",
            "Times this process took a watch trigger's lease over from another holder that had let it "
            "expire (it died, or lost the store) instead of releasing it.",
            ["trigger"],
            registry=r,
        )
        self.watch_redelivered = prometheus.Counter(
            "wasikv_watch_redelivered_changes",
            "Changes delivered again after a takeover: the previous holder had claimed them, and may "
            "have delivered them before it stopped.",
            ["trigger"],
            registry=r,
        )
        self._lag_sources: list[Callable[[], Iterable[tuple[str, int]]]] = []
        self._count_sources: list[Callable[[], Iterable[tuple[str, int, int]]]] = []
        self._counted: dict[str, tuple[int, int]] = {}

    def observe_request(self, route: str | None, status: int, seconds: float) -> None:
        """Count one request and its latency."""
        labels = (route or "(none)", str(status))
        self.requests.labels(*labels).inc()
        self.request_seconds.labels(*labels).observe(seconds)

    def watch_lag(self, source: Callable[[], Iterable[tuple[str, int]]]) -> None:
        """Read watcher lags from `source` (pairs of trigger name, changes behind) at every scrape."""
        self._lag_sources.append(source)

    def watch_counts(self, source: Callable[[], Iterable[tuple[str, int, int]]]) -> None:
        """Read watch takeovers and redelivered changes from `source` (trigger, totals) at every scrape."""
        self._count_sources.append(source)

    def refresh(self) -> None:
        """Update the values that are read rather than counted (watcher lag, takeovers)."""
        for source in self._lag_sources:
            for trigger, lag in source():
                self.watcher_lag.labels(trigger).set(lag)
        for counts in self._count_sources:
            for trigger, takeovers, redelivered in counts():
                before = self._counted.get(trigger, (0, 0))
                self.watch_takeovers.labels(trigger).inc(takeovers - before[0])
                self.watch_redelivered.labels(trigger).inc(redelivered - before[1])
                self._counted[trigger] = (takeovers, redelivered)

    def refresh_every(self, seconds: float) -> None:
        """Keep refreshing on a daemon thread (other processes may serve the scrape)."""

        def loop() -> None:
            while True:
                time.sleep(seconds)
                try:
                    self.refresh()
                except Exception:
                    log.debug("refreshing metrics failed", exc_info=True)

        threading.Thread(target=loop, name="wasikv-metrics", daemon=True).start()

    def scrape_registry(self) -> CollectorRegistry:
        """A registry exposing `registry`, refreshed (see `refresh`) at every scrape."""
        prometheus = _prometheus()
        metrics = self

        class _Refreshing:
            def collect(self) -> Iterator[Any]:
                metrics.refresh()
                yield from metrics.registry.collect()

        refreshing: CollectorRegistry = prometheus.CollectorRegistry(auto_describe=False)
        refreshing.register(_Refreshing())
        return refreshing

    def serve(self, host: str, port: int) -> None:
        """Serve `/metrics` on a thread of its own (prometheus-client's HTTP server)."""
        prometheus = _prometheus()
        try:
            prometheus.start_http_server(port, addr=host, registry=self.scrape_registry())
        except OSError as exc:
            raise ConfigError(f"--metrics {host}:{port}: cannot listen: {exc.strerror or exc}") from None


_CAPABILITIES = (
    "atomic_batches",
    "durable",
    "cross_process",
    "has_change_feed",
    "change_notifications",
    "keeps_positions",
    "has_leases",
)


def measured(inner: Store, label: str, metrics: Metrics) -> Store:
    """`inner`, timing every operation (and counting failures) into `metrics` under `label`."""
    # A subclass per store class, so the capabilities stay class attributes.
    capabilities = {name: getattr(inner, name) for name in _CAPABILITIES}
    cls: type[MeasuredStore] = type(f"Measured{type(inner).__name__}", (MeasuredStore,), capabilities)
    return cls(inner, label, metrics)


class MeasuredStore(Store):
    """A store that times every operation (and counts failures) into `Metrics`; see `measured`."""

    def __init__(self, inner: Store, label: str, metrics: Metrics) -> None:
        self.inner = inner
        self.url = inner.url
        self._label = label
        self._metrics = metrics

    def _timed(self, operation: str, call: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        try:
            return call()
        except StoreError:
            self._metrics.store_errors.labels(self._label, operation).inc()
            raise
        finally:
            self._metrics.store_seconds.labels(self._label, operation).observe(time.perf_counter() - started)

    def get(self, key: str) -> bytes | None:
        return self._timed("get", functools.partial(self.inner.get, key))  # type: ignore[no-any-return]

    def get_versioned(self, key: str) -> Versioned:
        return self._timed("get_versioned", functools.partial(self.inner.get_versioned, key))  # type: ignore[no-any-return]

    def set(self, key: str, value: bytes) -> None:
        self._timed("set", functools.partial(self.inner.set, key, value))

    def delete(self, key: str) -> None:
        self._timed("delete", functools.partial(self.inner.delete, key))

    def exists(self, key: str) -> bool:
        return self._timed("exists", functools.partial(self.inner.exists, key))  # type: ignore[no-any-return]

    def list_keys(self, after: str | None, limit: int) -> list[str]:
        return self._timed("list_keys", functools.partial(self.inner.list_keys, after, limit))  # type: ignore[no-any-return]

    def increment(self, key: str, delta: int) -> int:
        return self._timed("increment", functools.partial(self.inner.increment, key, delta))  # type: ignore[no-any-return]

    def swap(self, key: str, version: int, value: bytes) -> bool:
        return self._timed("swap", functools.partial(self.inner.swap, key, version, value))  # type: ignore[no-any-return]

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return self._timed("get_many", functools.partial(self.inner.get_many, keys))  # type: ignore[no-any-return]

    def set_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        self._timed("set_many", functools.partial(self.inner.set_many, items))

    def delete_many(self, keys: Sequence[str]) -> None:
        self._timed("delete_many", functools.partial(self.inner.delete_many, keys))

    def changes(self, after: int, limit: int) -> list[Change]:
        return self.inner.changes(after, limit)

    def last_change(self) -> int:
        return self.inner.last_change()

    def wait_for_change(self, after: int, timeout: float) -> bool:
        return self.inner.wait_for_change(after, timeout)

    def load_position(self, name: str) -> int | None:
        return self.inner.load_position(name)

    def save_position(self, name: str, seq: int) -> None:
        self.inner.save_position(name, seq)

    def acquire_lease(self, name: str, holder: str, seconds: float) -> LeaseState:
        return self.inner.acquire_lease(name, holder, seconds)

    def renew_lease(self, name: str, holder: str, token: int, seconds: float) -> bool:
        return self.inner.renew_lease(name, holder, token, seconds)

    def release_lease(self, name: str, token: int) -> None:
        self.inner.release_lease(name, token)

    def save_fenced(self, name: str, token: int, seq: int, claimed: int) -> bool:
        return self.inner.save_fenced(name, token, seq, claimed)

    def lease_members(self, group: str, member: str, seconds: float) -> int:
        return self.inner.lease_members(group, member, seconds)

    def close(self) -> None:
        self.inner.close()


__all__ = ["MeasuredStore", "Metrics", "measured"]
