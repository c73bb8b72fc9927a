"""Pythonic access to wasi:keyvalue from inside a guest component.

This module wraps the generated bindings (`wasikv_sdk.wit.imports.wasi_keyvalue_store`,
`.atomics` and `.batch`) and is only importable inside a component built
with componentize-py. Host-side code should use `wasikv_sdk.errors` and
`wasikv_sdk.protocol`, which are pure Python.

Example::

    from wasikv_sdk import key_value

    with key_value.open_default() as bucket:
        bucket.set("greeting", b"hello")
        hits = bucket.increment("hits")
        bucket.update("log", lambda old: (old or b"") + b"+")

Every failure reported by the host is raised as one of the exceptions in
`wasikv_sdk.errors`:

- `NoSuchStore`: the host defines no store under the label,
- `AccessDenied`: the store exists but this component was not granted it,
- `StoreError`: any other failure, with the host's message (this includes
  exceeded limits, malformed cursors and non-integer counters),
- `CasConflict`: a compare-and-swap lost because the key changed.

Handles (buckets and compare-and-swap handles) hold host resources, and the
host limits how many an instance may keep open: close buckets you are done
with (or use them as context managers); `Bucket.cas` and `Bucket.update`
release their handles themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from componentize_py_types import Err

from ._cas import retry_cas
from .constants import HOSTCALL_BUDGET_BYTES, S64_MAX, S64_MIN
from .errors import AccessDenied, CasConflict, KeyValueError, NoSuchStore, StoreError
from .wit.imports import atomics, batch
from .wit.imports import wasi_keyvalue_store as store

if TYPE_CHECKING:
    from .protocol import BucketProtocol

__all__ = ["DEFAULT_LABEL", "Bucket", "Cas", "open", "open_default"]

#: The label `open_default` opens.
DEFAULT_LABEL = "default"


def _translate(error: Any, label: str, keep: Callable[[Any], None] | None = None) -> KeyValueError:
    """Turn a WIT error value into the SDK exception to raise.

    This is the only place that maps `wasi:keyvalue` errors: `store.error`
    (`no-such-store`, `access-denied`, `other`) and `atomics.cas-error`
    (`store-error`, `cas-failed`). For `cas-failed` the fresh handle carried
    by the error goes to `keep`; without one it is released here, since the
    caller does not use it.
    """
    if isinstance(error, store.Error_NoSuchStore):
        return NoSuchStore(f"no store is defined under the label {label!r}")
    if isinstance(error, store.Error_AccessDenied):
        return AccessDenied(f"this component was not granted access to the store {label!r}")
    if isinstance(error, store.Error_Other):
        return StoreError(str(error.value))
    if isinstance(error, atomics.CasError_StoreError):
        return _translate(error.value, label)
    if isinstance(error, atomics.CasError_CasFailed):
        (keep or _release)(error.value)
        return CasConflict(f"the key changed since the compare-and-swap handle was created (store {label!r})")
    return StoreError(f"unexpected error from the host: {error!r}")


class _HostErrors:
    """`with errors:` turns an `Err` from the bindings into the SDK's exception.

    The one place calls into the host are guarded (with `_translate`, the
    one place errors are mapped). A class rather than a generator-based
    context manager: it runs on every call, in the guest's interpreter.
    """

    __slots__ = ("keep", "label")

    def __init__(self, label: str, keep: Callable[[Any], None] | None = None) -> None:
        self.label = label
        self.keep = keep

    def __enter__(self) -> None:
        return None

    def __exit__(self, _type: object, exc: BaseException | None, _tb: object) -> None:
        if isinstance(exc, Err):
            raise _translate(exc.value, self.label, self.keep) from None


def _release(resource: Any) -> None:
    """Drop a host handle now instead of waiting for garbage collection.

    Call this at most once per handle, and never on a handle that was passed
    (moved) to `atomics.swap`: the generated `__exit__` fails on a handle
    whose finalizer is already detached, so such handles are skipped here.
    """
    finalizer = getattr(resource, "finalizer", None)
    if finalizer is not None and not finalizer.alive:
        return
    resource.__exit__(None, None, None)


def _key(key: str) -> str:
    # A wrong type would trap the whole instance inside the bindings; fail in Python instead.
    if not isinstance(key, str):
        raise TypeError(f"keys must be str, not {type(key).__name__}")
    return key


def _value(value: bytes | bytearray | memoryview) -> bytes:
    if isinstance(value, bytes):
        data = value
    elif isinstance(value, bytearray | memoryview):
        data = bytes(value)
    else:
        raise TypeError(f"values must be bytes, not {type(value).__name__}")
    _within_budget(len(data))
    return data


def _within_budget(size: int) -> None:
    # wasmtime traps a call that carries more, before the host sees it: refuse
    # here with the error the host gives for its own limits.
    if size > HOSTCALL_BUDGET_BYTES:
        raise StoreError(
            f"hostcall budget: {size} bytes of values in one call > {HOSTCALL_BUDGET_BYTES}"
            " (what wasmtime lets one call copy); send fewer or smaller values per call"
        )


def open(label: str) -> Bucket:
    """Open the bucket named `label`.

    Raises:
        NoSuchStore: the host defines no store under `label`.
        AccessDenied: the store exists but this component was not granted it.
        StoreError: any other failure (e.g. too many open buckets).
    """
    with _HostErrors(label):
        raw = store.open(_key(label))
    return Bucket(raw, label)


def open_default() -> Bucket:
    """Open the bucket labelled `"default"`.

    Raises:
        NoSuchStore: the host defines no `"default"` store.
        AccessDenied: the store exists but this component was not granted it.
        StoreError: any other failure (e.g. too many open buckets).
    """
    return open(DEFAULT_LABEL)


class _HostHandle:
    """Owns one host resource handle (`_raw`); closing releases it once."""

    _raw: Any

    @property
    def closed(self) -> bool:
        """Whether the host handle was released (by `close`, exit, or `Cas.swap`)."""
        return self._raw is None

    def close(self) -> None:
        """Release the host handle if this object still holds it; idempotent."""
        raw, self._raw = self._raw, None
        if raw is not None:
            _release(raw)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class Cas(_HostHandle):
    """A compare-and-swap handle, pinned to the version of one key.

    Get one from `Bucket.cas` and use it as a context manager; the host
    handle is released on exit. `current` is read once, when the handle is
    created. One `swap` per handle: create a new handle to try again (or use
    `Bucket.update`, which retries for you).
    """

    def __init__(self, raw: Any, key: str, label: str, keep: Callable[[Any], None] | None = None) -> None:
        """Wrap a raw `atomics.Cas` handle; reads its current value.

        When `swap` loses, the fresh handle the host returns goes to `keep`
        (to pin a retry without asking the host for one); without `keep` it
        is released.

        Raises:
            StoreError: the host could not read the pinned value.
        """
        self._raw: Any = raw
        self._label = label
        self._keep = keep
        self.key = key
        try:
            current: bytes | None = raw.current()
        except Err as e:
            self.close()
            raise _translate(e.value, label) from None
        self._current = current

    @property
    def current(self) -> bytes | None:
        """The value at the pinned version; None when the key did not exist."""
        return self._current

    def swap(self, value: bytes) -> None:
        """Write `value` if the key is still at the pinned version.

        The handle is used up by this call, whatever the outcome.

        Raises:
            CasConflict: the key was written or deleted since the handle was
                created (even if it holds the same bytes again).
            StoreError: the store failed, or this handle was already used
                or closed.
            TypeError: `value` is not bytes.
        """
        data = _value(value)
        raw = self._raw
        if raw is None:
            raise StoreError(f"the compare-and-swap handle for key {self.key!r} was already used or closed")
        self._raw = None  # swap takes ownership of the host handle
        with _HostErrors(self._label, self._keep):
            atomics.swap(raw, data)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Cas key={self.key!r} current={self._current!r} {state}>"


class Bucket(_HostHandle):
    """One key-value namespace (a wrapped `store.Bucket` handle).

    Implements `wasikv_sdk.protocol.BucketProtocol`. Use it as a context
    manager, or call `close`, to release the host handle.
    """

    def __init__(self, raw: Any, label: str) -> None:
        """Wrap a raw `store.Bucket` opened under `label` (use `open` instead)."""
        self._raw: Any = raw
        self.label = label
        self._errors = _HostErrors(label)

    # -- plumbing ---------------------------------------------------------

    def _handle(self) -> Any:
        raw = self._raw
        if raw is None:
            raise StoreError(f"the bucket {self.label!r} is closed")
        return raw

    def _error(self, e: Any) -> KeyValueError:
        return _translate(e.value, self.label)

    @property
    def raw(self) -> Any:
        """The underlying `wasikv_sdk.wit.imports.wasi_keyvalue_store.Bucket`, for the raw bindings.

        Raises:
            StoreError: the bucket is closed.
        """
        return self._handle()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Bucket {self.label!r} {state}>"

    # -- single keys ------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        """The value of `key`, or None when the key does not exist.

        Raises:
            StoreError: the store failed, the key exceeds the host's key size
                limit, or the bucket is closed.
        """
        raw = self._handle()
        with self._errors:
            value: bytes | None = raw.get(_key(key))
        return value

    def set(self, key: str, value: bytes) -> None:
        """Create or replace `key` with `value`.

        Raises:
            StoreError: the store failed, the key or value exceeds the host's
                size limits, or the bucket is closed.
            TypeError: `value` is not bytes.
        """
        raw = self._handle()
        with self._errors:
            raw.set(_key(key), _value(value))

    def delete(self, key: str) -> None:
        """Remove `key`; removing a missing key succeeds.

        Raises:
            StoreError: the store failed, the key exceeds the host's key size
                limit, or the bucket is closed.
        """
        raw = self._handle()
        with self._errors:
            raw.delete(_key(key))

    def exists(self, key: str) -> bool:
        """Whether `key` exists (a key holding an empty value exists).

        Raises:
            StoreError: the store failed, the key exceeds the host's key size
                limit, or the bucket is closed.
        """
        raw = self._handle()
        with self._errors:
            found: bool = raw.exists(_key(key))
        return found

    # -- listing ----------------------------------------------------------

    def list_page(self, cursor: str | None = None) -> tuple[list[str], str | None]:
        """One page of keys, in ascending order, and the cursor of the next page.

        Start with `cursor=None`; the returned cursor is None on the last
        page. Cursors are opaque: only pass back what the host returned.

        Raises:
            StoreError: the store failed, the cursor is malformed, or the
                bucket is closed.
        """
        raw = self._handle()
        with self._errors:
            response = raw.list_keys(cursor)
        keys: list[str] = list(response.keys)
        next_cursor: str | None = response.cursor
        return keys, next_cursor

    def keys(self, prefix: str | None = None) -> Iterator[str]:
        """Every key, or every key starting with `prefix`, in ascending order.

        Walks the pages of `list-keys` lazily. Keys arrive sorted, so with a
        prefix the walk stops at the first key past the prefix's range.

        Raises:
            StoreError: the store failed or the bucket is closed (raised while
                iterating).
        """
        cursor: str | None = None
        while True:
            page, cursor = self.list_page(cursor)
            for key in page:
                if prefix is not None and not key.startswith(prefix):
                    if key > prefix:
                        return
                    continue
                yield key
            if cursor is None:
                return

    # -- batches ----------------------------------------------------------

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes | None]:
        """The values of `keys` in one call: key -> value, None for missing keys.

        The dict follows the order of first appearance in `keys`.

        Raises:
            StoreError: the store failed, there are more keys than the host's
                batch limit, a key exceeds the key size limit, or the bucket
                is closed.
        """
        raw = self._handle()
        wanted = [_key(key) for key in keys]
        with self._errors:
            entries = batch.get_many(raw, wanted)
        result: dict[str, bytes | None] = {}
        for key, value in entries:
            result.setdefault(key, value)
        return result

    def set_many(self, items: Mapping[str, bytes] | Iterable[tuple[str, bytes]]) -> None:
        """Set every pair in one call (a mapping or an iterable of pairs).

        Whether the batch applies all-or-nothing depends on the store.

        Raises:
            StoreError: the store failed, there are more pairs than the host's
                batch limit, a key or value exceeds its size limit, or the
                bucket is closed.
            TypeError: a value is not bytes.
        """
        raw = self._handle()
        pairs: Iterable[tuple[str, bytes]] = items.items() if isinstance(items, Mapping) else items
        payload = [(_key(key), _value(value)) for key, value in pairs]
        _within_budget(sum(len(value) for _, value in payload))
        with self._errors:
            batch.set_many(raw, payload)

    def delete_many(self, keys: Iterable[str]) -> None:
        """Delete every key in one call; missing keys are ignored.

        Raises:
            StoreError: the store failed, there are more keys than the host's
                batch limit, a key exceeds the key size limit, or the bucket
                is closed.
        """
        raw = self._handle()
        doomed = [_key(key) for key in keys]
        with self._errors:
            batch.delete_many(raw, doomed)

    # -- atomics ----------------------------------------------------------

    def increment(self, key: str, delta: int = 1) -> int:
        """Atomically add `delta` to the decimal integer at `key` and return the new value.

        A missing key counts as 0. The value is stored as ASCII decimal text.

        Raises:
            StoreError: the stored value is not a canonical decimal integer,
                the result overflows a signed 64-bit integer, the store
                failed, or the bucket is closed.
            ValueError: `delta` is outside the signed 64-bit range.
        """
        raw = self._handle()
        if not S64_MIN <= delta <= S64_MAX:
            raise ValueError(f"delta {delta} is outside the signed 64-bit range")
        with self._errors:
            result: int = atomics.increment(raw, _key(key), delta)
        return result

    def cas(self, key: str) -> Cas:
        """A compare-and-swap handle pinned to `key`'s current version (or absence).

        Use it as a context manager; the handle is released on exit::

            with bucket.cas("stock") as cas:
                left = int(cas.current or b"0")
                cas.swap(str(left - 1).encode())  # CasConflict if "stock" changed

        Raises:
            StoreError: the store failed, the host's limit on open
                compare-and-swap handles was reached, or the bucket is closed.
        """
        raw = self._handle()
        with self._errors:
            handle = atomics.Cas.new(raw, _key(key))
        return Cas(handle, key, self.label)

    def update(self, key: str, fn: Callable[[bytes | None], bytes], *, max_attempts: int = 100) -> bytes:
        """Atomically replace `key`'s value with `fn(current)` and return the written value.

        `current` is None when the key does not exist. On a conflict `fn` is
        called again with the newer value, so it should have no side effects.
        Each retry reuses the fresh handle the host returns with the conflict.
        An exception raised by `fn` propagates (nothing is written).

        Raises:
            CasConflict: the key kept changing for `max_attempts` attempts.
            StoreError: the store failed, the host's limit on open
                compare-and-swap handles was reached, or the bucket is closed.
            TypeError: `fn` returned something other than bytes.
            ValueError: `max_attempts` is less than 1.
        """
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        handles = _Repinning(self._handle(), _key(key), self.label)

        def step(current: bytes | None) -> tuple[bytes, bytes]:
            new_value = _value(fn(current))
            return new_value, new_value

        def give_up(attempts: int) -> CasConflict:
            return CasConflict(f"update of key {key!r} lost {attempts} compare-and-swap attempts in a row")

        try:
            return retry_cas(handles.pin, step, give_up=give_up, max_attempts=max_attempts)
        finally:
            handles.close()


class _Repinning:
    """The compare-and-swap handles of one `Bucket.update`, one per attempt.

    The first is created; each later one is the fresh handle the host
    returns with `cas-failed`, already pinned to the newer version, which
    saves a host call per retry.
    """

    def __init__(self, bucket: Any, key: str, label: str) -> None:
        self._bucket = bucket
        self._key = key
        self._label = label
        self._next: Any = None

    def pin(self) -> Cas:
        """The handle for the next attempt.

        Raises:
            StoreError: the store failed, or the host's limit on open
                compare-and-swap handles was reached.
        """
        raw, self._next = self._next, None
        if raw is None:
            with _HostErrors(self._label):
                raw = atomics.Cas.new(self._bucket, self._key)
        return Cas(raw, self._key, self._label, keep=self._keep)

    def _keep(self, fresh: Any) -> None:
        self._next = fresh

    def close(self) -> None:
        """Release the handle kept from the last conflict, if no attempt used it."""
        raw, self._next = self._next, None
        if raw is not None:
            _release(raw)


if TYPE_CHECKING:

    def _conforms(bucket: Bucket) -> BucketProtocol:
        return bucket
