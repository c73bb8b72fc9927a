"""A single-flight cache: concurrent callers of one key wait for one computation.

Pure Python over `BucketProtocol`; guests and host-side services sharing a
store share the cache::

    from wasikv_sdk.cache import Cache

    cache = Cache(bucket, scope="user:42")
    report = cache.get_or_compute("report", build_report, ttl=300, wait_timeout=30)

Storage: entry `key` of scope `scope` is the key
``"cache/" + escaped(scope) + "/" + key`` (the scope has ``%`` and ``/``
escaped, so no scope's keys are a prefix-range of another's), holding a JSON
record in one of three states:

- ``{"state": "pending", "owner": TOKEN, "expires": T}``: a caller is computing it;
- ``{"state": "value", "value": V, "expires": T or null}``;
- ``{"state": "error", "type": NAME, "message": TEXT, "expires": T or null}``.

How `get_or_compute` works: it pins the key with `cas`. A live value is
returned; a live error is raised as `CacheComputeError`; a live pending
marker means another caller is computing, so it polls (jittered backoff)
until the value or error appears or `wait_timeout` passes
(`CacheWaitTimeout`). A missing or expired entry is claimed by swapping in
a pending marker; exactly one of the callers racing for one version wins,
computes `fn()` and swaps the result in, pinned to its own marker.

Guarantees and limits:

- While the pending marker lives (`pending_ttl`), `fn` runs once for all
  callers sharing the store. A computation that outlives `pending_ttl` may
  be started again by a later caller (the marker is presumed abandoned);
  the first result then wins and the other is dropped. Pick `pending_ttl`
  above the longest computation.
- Crash: a computing caller that dies leaves its marker; it expires after
  `pending_ttl`, and the next caller (or a waiter) computes. Callers that
  give up or are interrupted (`KeyboardInterrupt`) expire their marker at
  once.
- Errors: an exception from `fn` is stored for `error_ttl` seconds (default
  5; long enough for every waiter to see it) and raised to every caller as
  `CacheComputeError` carrying its type name and message; the computing
  caller's has the original exception as `__cause__`.
- Clock skew: expiry times are written and compared in wall-clock time of
  different hosts, so entries (and markers) expire early or late by the
  skew between hosts.
- Store failure: errors propagate. If storing the result fails, the marker
  stays until `pending_ttl` and waiters time out or compute again.
- Values must be JSON-serialisable and the record must fit the store's
  value size limit (2 MiB by default); a value that cannot be stored is
  treated as a computation error.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Callable
from typing import Any

from ._cas import retry_cas
from ._clock import Backoff, Deadline, now
from .coordination import CacheComputeError, CacheWaitTimeout, CorruptRecord
from .errors import CasConflict, KeyValueError
from .protocol import BucketProtocol

__all__ = ["KEY_PREFIX", "Cache", "CacheComputeError", "CacheWaitTimeout"]

#: Every cache key starts with KEY_PREFIX.
KEY_PREFIX = "cache/"

_BATCH = 500
#: How often a computing caller retries storing its result when the entry keeps changing.
_RESOLVE_ATTEMPTS = 10
_MISSING: Any = object()


def _escape(scope: str) -> str:
    return scope.replace("%", "%25").replace("/", "%2F")


def _expiry(ttl: float | None, at: float) -> float | None:
    return None if ttl is None else at + ttl


def _live(record: dict[str, Any], at: float) -> bool:
    expires = record.get("expires")
    return expires is None or float(expires) > at


class Cache:
    """The entries of one `scope` (a namespace: "global", a session, a user...) in `bucket`.

    Args:
        pending_ttl: how long a computation may run before its marker is
            presumed abandoned (seconds).
        error_ttl: how long a failed computation's error is kept (seconds,
            None = until removed).
    """

    def __init__(
        self,
        bucket: BucketProtocol,
        scope: str = "global",
        *,
        pending_ttl: float = 60.0,
        error_ttl: float | None = 5.0,
    ) -> None:
        if pending_ttl <= 0:
            raise ValueError(f"pending_ttl must be positive, not {pending_ttl}")
        if error_ttl is not None and error_ttl <= 0:
            raise ValueError(f"error_ttl must be positive or None, not {error_ttl}")
        self.bucket = bucket
        self.scope = scope
        self.prefix = KEY_PREFIX + _escape(scope) + "/"
        self.pending_ttl = pending_ttl
        self.error_ttl = error_ttl

    def __repr__(self) -> str:
        return f"<Cache scope={self.scope!r}>"

    # -- records ----------------------------------------------------------

    def _decode(self, store_key: str, raw: bytes | None) -> dict[str, Any] | None:
        if raw is None:
            return None
        try:
            record: Any = json.loads(raw)
            state = record["state"]
        except (ValueError, TypeError, KeyError) as exc:
            raise CorruptRecord(f"key {store_key!r} does not hold a cache record: {raw[:64]!r}") from exc
        if state not in ("pending", "value", "error"):
            raise CorruptRecord(f"key {store_key!r} holds a cache record in an unknown state {state!r}")
        result: dict[str, Any] = record
        return result

    def _raise_error(self, key: str, record: dict[str, Any]) -> None:
        raise CacheComputeError(key, str(record.get("type", "Exception")), str(record.get("message", "")))

    def _poll_backoff(self) -> Backoff:
        longest = 0.25 if self.error_ttl is None else min(0.25, self.error_ttl / 4)
        return Backoff(min(0.005, longest), longest, 1.5)

    # -- reading and writing ----------------------------------------------

    def get(self, key: str, default: Any = None, *, wait_timeout: float = 0.0) -> Any:
        """The cached value of `key`, or `default` if there is none.

        A pending entry is waited for up to `wait_timeout` seconds (default:
        not at all), then `default` is returned.

        Raises:
            CacheComputeError: an error is stored for `key`.
        """
        store_key = self.prefix + key
        deadline = Deadline(wait_timeout)
        backoff = self._poll_backoff()
        while True:
            record = self._decode(store_key, self.bucket.get(store_key))
            at = now()
            if record is None or not _live(record, at):
                return default
            if record["state"] == "value":
                return record["value"]
            if record["state"] == "error":
                self._raise_error(key, record)
            if deadline.expired():
                return default
            backoff.wait(deadline)

    def set(
        self,
        key: str,
        value: Any = None,
        error: BaseException | str | None = None,
        *,
        ttl: float | None = None,
    ) -> None:
        """Store `value` for `key` (expiring after `ttl` seconds, None = never); resolves a pending entry.

        With `error` (an exception, or a message) an error is stored instead,
        for `ttl` or else `error_ttl` seconds: readers and waiters get
        `CacheComputeError`.
        """
        at = now()
        if error is not None:
            type_name, message = (
                (type(error).__name__, str(error)) if isinstance(error, BaseException) else ("Error", error)
            )
            lifetime = ttl if ttl is not None else self.error_ttl
            expires = _expiry(lifetime, at)
            record = {"state": "error", "type": type_name, "message": message, "expires": expires}
        else:
            record = {"state": "value", "value": value, "expires": _expiry(ttl, at)}
        self.bucket.set(self.prefix + key, json.dumps(record, allow_nan=False).encode())

    def remove(self, key: str) -> None:
        """Drop the entry of `key` (a computation in flight will not store its result)."""
        self.bucket.delete(self.prefix + key)

    # -- single flight ----------------------------------------------------

    def get_or_compute(
        self,
        key: str,
        fn: Callable[[], Any],
        *,
        ttl: float | None = None,
        wait_timeout: float = 30.0,
        pending_ttl: float | None = None,
    ) -> Any:
        """The value of `key`, computed by `fn()` by exactly one of the concurrent callers.

        Args:
            ttl: how long the computed value is kept (seconds, None = until removed).
            wait_timeout: how long to wait for another caller's computation.
            pending_ttl: overrides the cache's `pending_ttl` for this computation.

        Raises:
            CacheComputeError: `fn` raised (here or in the caller that computed),
                or an error is stored for `key`.
            CacheWaitTimeout: another caller's computation did not finish in
                `wait_timeout` seconds.
        """
        store_key = self.prefix + key
        marker_ttl = self.pending_ttl if pending_ttl is None else pending_ttl
        if marker_ttl <= 0:
            raise ValueError(f"pending_ttl must be positive, not {marker_ttl}")
        deadline = Deadline(wait_timeout)
        backoff = self._poll_backoff()

        def claim(current: bytes | None) -> tuple[bytes | None, tuple[str | None, dict[str, Any] | None]]:
            """Swap in our pending marker if the entry is missing or expired: (our token, None).

            A live entry is left alone: (None, the entry).
            """
            record = self._decode(store_key, current)
            at = now()
            if record is not None and _live(record, at):
                return None, (None, record)
            token = secrets.token_hex(16)
            marker = {"state": "pending", "owner": token, "expires": at + marker_ttl}
            return json.dumps(marker).encode(), (token, None)

        while True:
            # Another caller writing first is no reason to wait: look again at once.
            token, record = retry_cas(
                lambda: self.bucket.cas(store_key),
                claim,
                give_up=lambda _attempts: self._wait_timeout(key, wait_timeout),
                deadline=deadline,
            )
            if token is not None:
                return self._compute(key, store_key, token, fn, ttl)
            assert record is not None
            if record["state"] == "value":
                return record["value"]
            if record["state"] == "error":
                self._raise_error(key, record)
            # pending: someone else computes
            if deadline.expired():
                raise self._wait_timeout(key, wait_timeout)
            backoff.wait(deadline)

    def _wait_timeout(self, key: str, wait_timeout: float) -> CacheWaitTimeout:
        return CacheWaitTimeout(
            f"cache entry {key!r} (scope {self.scope!r}) still pending after {wait_timeout:g}s"
        )

    def _compute(self, key: str, store_key: str, token: str, fn: Callable[[], Any], ttl: float | None) -> Any:
        try:
            value = fn()
            encoded = json.dumps(
                {"state": "value", "value": value, "expires": _expiry(ttl, now())}, allow_nan=False
            ).encode()
        except Exception as exc:
            at = now()
            record = {
                "state": "error",
                "type": type(exc).__name__,
                "message": str(exc),
                "expires": _expiry(self.error_ttl, at),
            }
            self._resolve(store_key, token, json.dumps(record).encode())
            raise CacheComputeError(key, type(exc).__name__, str(exc)) from exc
        except BaseException:
            # Interrupted: expire our marker now so others need not wait for pending_ttl.
            abandoned = {"state": "pending", "owner": token, "expires": 0}
            with contextlib.suppress(KeyValueError):  # keep the interruption, not a store error
                self._resolve(store_key, token, json.dumps(abandoned).encode())
            raise
        self._resolve(store_key, token, encoded)
        return value

    def _resolve(self, store_key: str, token: str, data: bytes) -> bool:
        """Replace our pending marker with `data`; report False if the marker is no longer ours."""

        def step(current: bytes | None) -> tuple[bytes | None, bool]:
            record = self._decode(store_key, current)
            if record is None or record.get("state") != "pending" or record.get("owner") != token:
                return None, False  # removed, or taken over after our marker expired
            return data, True

        try:
            return retry_cas(
                lambda: self.bucket.cas(store_key),
                step,
                give_up=lambda attempts: CasConflict(f"key {store_key!r}: {attempts} attempts lost"),
                max_attempts=_RESOLVE_ATTEMPTS,
            )
        except CasConflict:
            return False

    # -- scope operations -------------------------------------------------

    def _store_keys(self, prefix: str = "") -> list[str]:
        return list(self.bucket.keys(self.prefix + prefix))

    def list(self) -> list[str]:
        """The keys of the scope's live entries (values, stored errors and pending ones), sorted."""
        store_keys = self._store_keys()
        at = now()
        found: list[str] = []
        for start in range(0, len(store_keys), _BATCH):
            for store_key, raw in self.bucket.get_many(store_keys[start : start + _BATCH]).items():
                record = self._decode(store_key, raw)
                if record is not None and _live(record, at):
                    found.append(store_key[len(self.prefix) :])
        return sorted(found)

    def remove_starting_with(self, prefix: str) -> int:
        """Drop every entry of the scope whose key starts with `prefix`; returns how many were deleted."""
        doomed = self._store_keys(prefix)
        for start in range(0, len(doomed), _BATCH):
            self.bucket.delete_many(doomed[start : start + _BATCH])
        return len(doomed)

    def clear(self) -> int:
        """Drop every entry of the scope; returns how many keys were deleted."""
        return self.remove_starting_with("")
