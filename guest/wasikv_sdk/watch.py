"""Watching a store from a guest: the `Watcher` base class.

A component built for the `wasikv:app/watch-trigger` world exports
`wasi:keyvalue/watcher`; componentize-py expects an exported class named
`Watcher`. Subclass this module's `Watcher` and override `on_set` and/or
`on_delete`::

    from wasikv_sdk import key_value, watch

    class Watcher(watch.Watcher):
        def on_set(self, bucket: key_value.Bucket, key: str, value: bytes) -> None:
            with key_value.open("audit") as audit:
                audit.set(f"set/{key}", value)

        def on_delete(self, bucket: key_value.Bucket, key: str) -> None:
            ...

`bucket` is the store that changed, as a `key_value.Bucket` (labelled with
the store's label; it is closed when the method returns). Raising an
exception makes the delivery fail: the traceback goes to stderr (the host
logs it), the instance traps, and the host retries the change, then drops it (see the host's
`wasikv.triggers.watch`). The host may deliver a change more than once,
so make watchers idempotent.

Importing this module works on any CPython; only a call with a raw binding
handle (what the host passes inside a component) imports the bindings.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

from .protocol import BucketProtocol

__all__ = ["STORE_ENV", "Watcher"]

#: The environment variable in which the host names the watched store's label.
STORE_ENV = "WASIKV_WATCH_STORE"

_F = TypeVar("_F", bound=Callable[..., None])
_EXPORTS = ("on_set", "on_delete")


def _store_label() -> str:
    # componentize-py fills os.environ from wasi:cli/environment on every call.
    return os.environ.get(STORE_ENV) or "watched"


def _export(method: _F) -> _F:
    """Wrap an override so it receives a Pythonic bucket and reports failures."""

    @functools.wraps(method)
    def exported(self: Any, bucket: Any, *args: Any) -> None:
        if isinstance(bucket, BucketProtocol):
            # Called from Python (tests, host code) with a bucket already.
            method(self, bucket, *args)
            return
        from . import key_value

        # An exception escaping here makes componentize-py print its traceback
        # to stderr and trap, which the host logs and retries.
        with key_value.Bucket(bucket, _store_label()) as wrapped:
            method(self, wrapped, *args)

    exported.__wasikv_export__ = True  # type: ignore[attr-defined]
    return exported  # type: ignore[return-value]


class Watcher:
    """Base class of watch-trigger guests: override `on_set` and/or `on_delete`.

    The defaults ignore the change. Overrides are wrapped when the subclass
    is created, so they receive a `key_value.Bucket` rather than the raw
    binding handle.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in _EXPORTS:
            method = cls.__dict__.get(name)
            if callable(method) and not getattr(method, "__wasikv_export__", False):
                setattr(cls, name, _export(method))

    @_export
    def on_set(self, bucket: BucketProtocol, key: str, value: bytes) -> None:
        """`key` was set to `value` in `bucket`."""

    @_export
    def on_delete(self, bucket: BucketProtocol, key: str) -> None:
        """`key` was deleted from `bucket`."""
