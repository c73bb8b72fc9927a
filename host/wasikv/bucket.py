"""Host-side buckets: the same Pythonic API guests get from `wasikv_sdk.key_value`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager

from wasikv_sdk._cas import retry_cas

from .errors import CasConflict
from .limits import Limits
from .stores.base import Store, Versioned


class Cas:
    """A value read for compare-and-swap; `swap` fails if the key changed since."""

    def __init__(self, store: Store, key: str, pinned: Versioned, limits: Limits) -> None:
        self._store = store
        self._pinned = pinned
        self._limits = limits
        self.key = key

    @property
    def current(self) -> bytes | None:
        """The value when this handle was created (None if the key was missing)."""
        return self._pinned.value

    def swap(self, value: bytes) -> None:
        """Write `value` unless the key was written or deleted since; else `CasConflict`."""
        self._limits.check_value(value)
        if not self._store.swap(self.key, self._pinned.version, value):
            raise CasConflict(f"key {self.key!r} changed since it was read")


class Bucket:
    """A store as seen through one label, with the host's limits applied.

    Errors: `StoreError` when the store fails, `LimitExceeded` (a
    `StoreError`) for oversized keys, values or batches.
    """

    def __init__(self, label: str, store: Store, limits: Limits) -> None:
        self.label = label
        self.store = store
        self.limits = limits

    def get(self, key: str) -> bytes | None:
        """The value of `key`, or None."""
        self.limits.check_key(key)
        return self.store.get(key)

    def set(self, key: str, value: bytes) -> None:
        """Create or replace `key`."""
        self.limits.check_key(key)
        self.limits.check_value(value)
        self.store.set(key, value)

    def delete(self, key: str) -> None:
        """Remove `key` (a missing key is fine)."""
        self.limits.check_key(key)
        self.store.delete(key)

    def exists(self, key: str) -> bool:
        """Whether `key` exists."""
        self.limits.check_key(key)
        return self.store.exists(key)

    def keys(self, prefix: str | None = None) -> Iterator[str]:
        """Every key (starting with `prefix`), in ascending order, page by page."""
        page_size = self.limits.list_page_size
        after = None
        if prefix:
            # Keys after the prefix itself come sorted; the prefix as a key
            # sorts before all of them.
            if self.store.exists(prefix):
                yield prefix
            after = prefix
        while True:
            page = self.store.list_keys(after, page_size)
            for key in page:
                if prefix and not key.startswith(prefix):
                    return
                yield key
            if len(page) < page_size:
                return
            after = page[-1]

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes | None]:
        """The values of `keys` (None for missing ones)."""
        wanted = list(keys)
        self.limits.check_batch(len(wanted))
        for key in wanted:
            self.limits.check_key(key)
        return dict(zip(wanted, self.store.get_many(wanted), strict=True))

    def set_many(self, items: Mapping[str, bytes] | Iterable[tuple[str, bytes]]) -> None:
        """Set several keys at once."""
        pairs = list(items.items()) if isinstance(items, Mapping) else list(items)
        self.limits.check_batch(len(pairs))
        for key, value in pairs:
            self.limits.check_key(key)
            self.limits.check_value(value)
        self.store.set_many(pairs)

    def delete_many(self, keys: Iterable[str]) -> None:
        """Delete several keys at once."""
        doomed = list(keys)
        self.limits.check_batch(len(doomed))
        for key in doomed:
            self.limits.check_key(key)
        self.store.delete_many(doomed)

    def increment(self, key: str, delta: int = 1) -> int:
        """Atomically add `delta` to the decimal counter at `key`; the new value."""
        self.limits.check_key(key)
        return self.store.increment(key, delta)

    @contextmanager
    def cas(self, key: str) -> Iterator[Cas]:
        """Read `key` for a compare-and-swap: `with bucket.cas(k) as c: c.swap(...)`."""
        self.limits.check_key(key)
        yield Cas(self.store, key, self.store.get_versioned(key), self.limits)

    def update(self, key: str, fn: Callable[[bytes | None], bytes], *, max_attempts: int = 100) -> bytes:
        """Replace the value of `key` with `fn(old)`, retrying on conflicts.

        Raises `CasConflict` when `max_attempts` attempts all lost a race.
        """
        self.limits.check_key(key)

        def step(current: bytes | None) -> tuple[bytes, bytes]:
            new = fn(current)
            # Checked before the swap checks it: a None from `fn` must fail, not mean "write nothing".
            self.limits.check_value(new)
            return new, new

        def give_up(_attempts: int) -> CasConflict:
            return CasConflict(f"update of key {key!r} lost {max_attempts} races in a row")

        return retry_cas(lambda: self.cas(key), step, give_up=give_up, max_attempts=max_attempts)
