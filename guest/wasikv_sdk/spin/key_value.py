"""`spin_sdk.key_value` over wasi:keyvalue: `open`, `open_default` and `Store`.

As in spin-sdk 3.x, failures are raised as `componentize_py_types.Err`
(also `wasikv_sdk.spin.wit.types.Err`) holding one of this module's
`Error_*` values; wasi:keyvalue's errors are mapped to them in
`_SpinErrors`, the one place that does so:

- `Error_NoSuchStore()`: no store is defined under the label;
- `Error_AccessDenied()`: this component was not granted the store;
- `Error_StoreTableFull()`: too many stores are open at once
  (close some with `__exit__`, or use `with`);
- `Error_Other(message)`: anything else, with the host's message.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeAlias

from componentize_py_types import Err

from ..wit.imports import wasi_keyvalue_store as wasi_store

__all__ = [
    "Error",
    "Error_AccessDenied",
    "Error_NoSuchStore",
    "Error_Other",
    "Error_StoreTableFull",
    "Store",
    "open",
    "open_default",
]

#: How the host's message starts when an instance has opened its limit of buckets.
_TABLE_FULL = "open bucket handle limit"


# spin_sdk's class names, underscores included: apps test `isinstance(e.value, Error_NoSuchStore)`.
@dataclass
class Error_StoreTableFull:
    """Too many stores are open at once in this instance."""


@dataclass
class Error_NoSuchStore:
    """No store is defined under the label."""


@dataclass
class Error_AccessDenied:
    """The store exists but this component was not granted it."""


@dataclass
class Error_Other:
    """Any other failure, with the host's message."""

    value: str


Error: TypeAlias = Error_StoreTableFull | Error_NoSuchStore | Error_AccessDenied | Error_Other


def _spin_error(error: Any) -> Error:
    if isinstance(error, wasi_store.Error_NoSuchStore):
        return Error_NoSuchStore()
    if isinstance(error, wasi_store.Error_AccessDenied):
        return Error_AccessDenied()
    if isinstance(error, wasi_store.Error_Other):
        message = str(error.value)
        return Error_StoreTableFull() if message.startswith(_TABLE_FULL) else Error_Other(message)
    return Error_Other(f"unexpected error from the host: {error!r}")


class _SpinErrors:
    """`with _ERRORS:` re-raises a wasi:keyvalue `Err` as an `Err` of Spin's error classes."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, _type: object, exc: BaseException | None, _tb: object) -> None:
        if isinstance(exc, Err):
            raise Err(_spin_error(exc.value)) from None


_ERRORS = _SpinErrors()


def open(name: str) -> Store:
    """Open the store named `name` ("default" is the default store).

    Raises:
        Err(Error_NoSuchStore()): no store is defined under `name`.
        Err(Error_AccessDenied()): this component was not granted the store.
        Err(Error_StoreTableFull()): too many stores are open at once.
        Err(Error_Other(message)): any other failure.
    """
    return Store.open(name)


def open_default() -> Store:
    """Open the default store; raises as `open`."""
    return Store.open("default")


class Store:
    """An open key-value store (a wasi:keyvalue bucket); release it with `with` or `__exit__`."""

    def __init__(self, bucket: Any) -> None:
        """Wrap an open `wasi:keyvalue/store` bucket (use `open` instead)."""
        self._bucket = bucket

    @classmethod
    def open(cls, label: str) -> Self:
        """Open the store named `label`; raises as the module's `open`."""
        with _ERRORS:
            return cls(wasi_store.open(label))

    def get(self, key: str) -> bytes | None:
        """The value of `key`, or None when it does not exist; raises `Err(Error_Other(...))`."""
        with _ERRORS:
            value: bytes | None = self._bucket.get(key)
        return value

    def set(self, key: str, value: bytes) -> None:
        """Set `key` to `value`, replacing any value; raises `Err(Error_Other(...))`."""
        with _ERRORS:
            self._bucket.set(key, value)

    def delete(self, key: str) -> None:
        """Delete `key` (deleting a missing key succeeds); raises `Err(Error_Other(...))`."""
        with _ERRORS:
            self._bucket.delete(key)

    def exists(self, key: str) -> bool:
        """Whether `key` exists; raises `Err(Error_Other(...))`."""
        with _ERRORS:
            found: bool = self._bucket.exists(key)
        return found

    def get_keys(self) -> list[str]:
        """Every key of the store, in ascending order; raises `Err(Error_Other(...))`."""
        keys: list[str] = []
        cursor: str | None = None
        with _ERRORS:
            while True:
                page = self._bucket.list_keys(cursor)
                keys.extend(page.keys)
                cursor = page.cursor
                if cursor is None:
                    return keys

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Release the store (once; later calls do nothing)."""
        bucket, self._bucket = self._bucket, None
        if bucket is not None:
            bucket.__exit__(exc_type, exc_value, traceback)
