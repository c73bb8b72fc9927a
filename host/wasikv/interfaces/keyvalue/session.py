"""Per-instance key-value state: granted stores, open handles and limits."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

from ...errors import LimitExceeded
from ...limits import Limits
from ...stores.base import Store
from .cursor import NumberedCursors

#: The store an empty bucket identifier opens.
DEFAULT_LABEL = "default"

#: Resolves a label to its store, raising `NoSuchStore` or `AccessDenied`.
StoreResolver = Callable[[str], Store]


@dataclass
class OpenBucket:
    """A `bucket` handle held by a guest."""

    label: str
    store: Store


@dataclass
class PinnedCas:
    """A `cas` handle: one key of one store, pinned at a version.

    Only the version is kept, never the value: a guest holding many handles
    on a large value costs the host a few bytes each, not a copy each.
    """

    store: Store
    key: str
    version: int


class KeyValueSession:
    """The handle tables of one component instance.

    Handles are small integers ("reps") owned by this session; a guest can
    only name handles it was given, and wasmtime checks their types.
    """

    def __init__(self, resolve: StoreResolver, limits: Limits, cursors: NumberedCursors) -> None:
        self.resolve = resolve
        self.limits = limits
        #: The host's u64 list-keys cursors (wasi:keyvalue@0.2.0-draft).
        self.cursors = cursors
        self.buckets: dict[int, OpenBucket] = {}
        self.cas: dict[int, PinnedCas] = {}
        self._reps = itertools.count(1)

    def open_bucket(self, label: str) -> int:
        """Resolve `label` and return the rep of a new bucket handle.

        The empty identifier opens `default`: wasmtime's own keyvalue store
        has only the bucket "", so a component written for `wasmtime serve
        -S keyvalue` uses the default store here.
        """
        label = label or DEFAULT_LABEL
        store = self.resolve(label)
        if len(self.buckets) >= self.limits.max_open_buckets:
            raise LimitExceeded(
                f"open bucket handle limit: {len(self.buckets)} open, max_open_buckets="
                f"{self.limits.max_open_buckets}; drop buckets you no longer use"
            )
        rep = next(self._reps)
        self.buckets[rep] = OpenBucket(label, store)
        return rep

    def pin_cas(self, store: Store, key: str) -> int:
        """Pin `key`'s current version and return the rep of a new cas handle."""
        if len(self.cas) >= self.limits.max_open_cas:
            raise LimitExceeded(
                f"open cas handle limit: {len(self.cas)} open, max_open_cas="
                f"{self.limits.max_open_cas}; drop cas handles you no longer use"
            )
        version = store.get_versioned(key).version
        rep = next(self._reps)
        self.cas[rep] = PinnedCas(store, key, version)
        return rep

    def drop_bucket(self, rep: int) -> None:
        """Forget a bucket handle (dropped by the guest, or never handed to it)."""
        self.buckets.pop(rep, None)

    def drop_cas(self, rep: int) -> None:
        """Forget a cas handle (dropped by the guest)."""
        self.cas.pop(rep, None)

    def bucket(self, rep: int) -> OpenBucket:
        """The bucket behind a handle the guest passed in."""
        return self.buckets[rep]

    def close(self) -> None:
        """Forget every handle (the instance is gone)."""
        self.buckets.clear()
        self.cas.clear()
