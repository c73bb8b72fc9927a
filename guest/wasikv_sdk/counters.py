"""Shared counters: integers many processes, hosts and guests update atomically.

Pure Python over `BucketProtocol`; works in a guest (with
`wasikv_sdk.key_value`'s bucket) and in host-side Python (with
`wasikv.Host(...).bucket(label)` or `wasikv.Bucket`)::

    from wasikv_sdk.counters import Counter, all_counters

    visits = Counter(bucket, "visits")
    visits.increment()          # -> new value
    ticket = visits.get_increment()   # -> value before, unique per caller

Storage: counter `name` is the key `"counter/" + name`, holding ASCII decimal
text (the wasi:keyvalue counter format), so `bucket.increment(counter.key)`
and `wasikv kv incr counter/NAME` work on the same number.

Guarantees: `increment` and `get_increment` are one store `increment` each;
`get_set` is a compare-and-swap loop; `set` is one write. None is ever a
read-then-write, so no update is lost under any concurrency. Values are
signed 64-bit (the store refuses overflow with `StoreError`).
"""

from __future__ import annotations

import re

from ._cas import cas_loop
from .constants import S64_MAX, S64_MIN
from .coordination import CorruptRecord
from .protocol import BucketProtocol

__all__ = ["KEY_PREFIX", "Counter", "all_counters"]

#: Every counter's key is KEY_PREFIX + its name.
KEY_PREFIX = "counter/"

_DECIMAL = re.compile(rb"0|-?[1-9][0-9]{0,18}")
_BATCH = 500


def _parse(key: str, raw: bytes | None) -> int:
    if raw is None:
        return 0
    if _DECIMAL.fullmatch(raw) is None:
        raise CorruptRecord(f"key {key!r} does not hold a decimal counter: {raw[:32]!r}")
    return int(raw)


def _check(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"counter values are int, not {type(value).__name__}")
    if not S64_MIN <= value <= S64_MAX:
        raise ValueError(f"{value} is outside the signed 64-bit range of counters")
    return value


class Counter:
    """One named counter in `bucket`; a missing counter reads 0.

    Raises (every method): the store's `KeyValueError`s, and `CorruptRecord`
    when the key holds something that is not a decimal integer.
    """

    def __init__(self, bucket: BucketProtocol, name: str, *, cas_timeout: float = 10.0) -> None:
        self.bucket = bucket
        self.name = name
        self.key = KEY_PREFIX + name
        self.cas_timeout = cas_timeout

    def __repr__(self) -> str:
        return f"<Counter {self.name!r}>"

    def get(self) -> int:
        """The current value (0 when the counter does not exist)."""
        return _parse(self.key, self.bucket.get(self.key))

    def set(self, value: int) -> int:
        """Set the counter to `value` (one write); returns `value`."""
        self.bucket.set(self.key, str(_check(value)).encode("ascii"))
        return value

    def increment(self, delta: int = 1) -> int:
        """Atomically add `delta`; returns the new value."""
        return self.bucket.increment(self.key, _check(delta))

    def get_increment(self, delta: int = 1) -> int:
        """Atomically add `delta`; returns the value before (distinct for every concurrent caller).

        One store increment: the new value minus `delta` is exactly the value
        this increment started from.
        """
        return self.bucket.increment(self.key, _check(delta)) - delta

    def get_set(self, value: int) -> int:
        """Atomically replace the value with `value`; returns the value before.

        A compare-and-swap loop: raises `CasConflict` if the counter kept
        changing under it for `cas_timeout` seconds.
        """
        new = str(_check(value)).encode("ascii")

        def step(current: bytes | None) -> tuple[bytes, int]:
            return new, _parse(self.key, current)

        return cas_loop(self.bucket, self.key, step, timeout=self.cas_timeout)

    def delete(self) -> None:
        """Remove the counter (it reads 0 afterwards)."""
        self.bucket.delete(self.key)


def all_counters(bucket: BucketProtocol, prefix: str = "") -> dict[str, int]:
    """A copy of every counter whose name starts with `prefix`: name -> value.

    Each value is read atomically, but the dict is not one snapshot: counters
    that change while it is built may show values from different moments,
    and counters deleted meanwhile are left out.
    """
    keys = list(bucket.keys(KEY_PREFIX + prefix))
    result: dict[str, int] = {}
    for start in range(0, len(keys), _BATCH):
        for key, raw in bucket.get_many(keys[start : start + _BATCH]).items():
            if raw is not None:
                result[key[len(KEY_PREFIX) :]] = _parse(key, raw)
    return result
