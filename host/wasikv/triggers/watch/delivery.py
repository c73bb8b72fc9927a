"""Calling a watcher component: `on-set`/`on-delete`, one fresh instance per batch, retries."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from functools import partial
from types import TracebackType
from typing import Any

from wasmtime import Store as WasmStore
from wasmtime.component import Component, Func, Instance

from ...capability import InstanceSpec
from ...errors import ComponentError, GuestTrap, KeyValueError, WasikvError
from ...host import Host
from ...interfaces.keyvalue.session import KeyValueSession
from ...interfaces.keyvalue.wit import BUCKET_TYPE
from ...runtime import _canonical as cv
from ...runtime._capi import context_address
from ...runtime.linking import check_exports
from ...runtime.wit_types import STRING, U8, FuncSig, ListOf, Own
from ...stores.base import Change
from .._exports import call_export, export_func
from .._output import CapturedOutput, log_guest_output
from .calls import DeliveryCall

log = logging.getLogger("wasikv.watch")


WATCHER_INTERFACE = "wasi:keyvalue/watcher@0.2.0-draft2"
#: Every version of the watcher the trigger calls (with the same functions).
WATCHER_INTERFACES = (WATCHER_INTERFACE, "wasi:keyvalue/watcher@0.2.0-draft")
WATCH_WORLD = "wasikv:app/watch-trigger"
#: The exports the trigger calls, as `wit/deps/keyvalue/watcher.wit` declares them.
WATCHER_FUNCTIONS = {
    "on-set": FuncSig((("bucket", Own("bucket")), ("key", STRING), ("value", ListOf(U8))), None),
    "on-delete": FuncSig((("bucket", Own("bucket")), ("key", STRING)), None),
}
#: The environment variable that tells a watcher which store label it watches.
STORE_ENV = "WASIKV_WATCH_STORE"


@dataclass(frozen=True)
class RetryPolicy:
    """How often a change whose delivery trapped is tried again.

    `delays[i]` is the wait before retry `i + 1`; a change is attempted
    `1 + len(delays)` times in all, then dropped.
    """

    delays: tuple[float, ...] = (0.1, 0.5, 2.0)

    @property
    def attempts(self) -> int:
        """Attempts per change, the first one included."""
        return 1 + len(self.delays)


class DeliveryFailed(WasikvError):
    """Delivering a change failed after `delivered` earlier changes of the batch succeeded.

    `retry` is False for changes that can never be delivered. `transient`
    marks failures that are not the change's: no instance could be created
    (the instance pool is full, memory is short); those are retried until
    they pass, without counting towards dropping the change.
    """

    def __init__(self, message: str, delivered: int, *, retry: bool = True, transient: bool = False) -> None:
        super().__init__(message)
        self.delivered = delivered
        self.retry = retry
        self.transient = transient


# ------------------------------------------------------------------ calling


class WatcherComponent:
    """A component exporting `wasi:keyvalue/watcher`, told about changes to one store label.

    Each `deliver` call runs in a fresh instance given `spec` (see
    `InstanceSpec`): the guest sees `spec.env` plus
    `WASIKV_WATCH_STORE=<store label>`, reads `spec.variables` through
    wasi:config, and may open the labels in `spec.grants` (all labels when
    None); it must be granted `store_label`.
    """

    def __init__(
        self,
        host: Host,
        component: Component,
        store_label: str,
        *,
        name: str = "watcher",
        spec: InstanceSpec | None = None,
    ) -> None:
        self.host = host
        self.component = component
        self.store_label = store_label
        self.name = name
        spec = spec or InstanceSpec()
        if spec.grants is not None and store_label not in spec.grants:
            raise ComponentError(f"watcher {name!r} is not granted the store {store_label!r} it watches")
        #: What each instance is given (`spec.timeout` bounds each `on-set`/`on-delete` call).
        self.spec = replace(spec, argv=(name,), env={**spec.env, STORE_ENV: store_label})
        self.store = host.bucket(store_label).store
        self._exports = host.exports(component)
        #: The watcher interface the component exports (either version).
        self.interface = next((i for i in WATCHER_INTERFACES if i in self._exports), WATCHER_INTERFACE)

    def check(self) -> None:
        """Raise `ComponentError` unless the component exports a well-typed watcher and instantiates."""
        check_exports(
            self._exports,
            self.interface,
            WATCHER_FUNCTIONS,
            f"watcher component {self.name!r} ({self.host.origin(self.component)})",
            WATCH_WORLD,
        )
        try:
            with self._instance() as (store, instance):
                _watcher_funcs(store, instance, self.interface)
        except ComponentError as exc:
            raise ComponentError(f"watcher component {self.name!r}: {exc}") from None

    def deliver(self, changes: Sequence[Change], call: DeliveryCall | None = None) -> int:
        """Call `on-set`/`on-delete` for `changes`, in order, in one fresh instance.

        Returns how many were delivered: all of them, or fewer when the guest
        holds on to so many buckets that another one cannot be opened, or
        `call` was asked to stop (call again with the rest). Raises
        `DeliveryFailed` when a call traps or a change cannot be delivered,
        saying how many were delivered before. `call` (for a runner watching
        from another thread) gets the instance's deadline and the progress.
        """
        if not changes:
            return 0
        delivered = 0
        try:
            with ExitStack() as stack:
                try:
                    store, instance = stack.enter_context(self._instance())
                except Exception as exc:
                    raise DeliveryFailed(f"cannot create an instance: {exc}", 0, transient=True) from exc
                on_set, on_delete = _watcher_funcs(store, instance, self.interface)
                ctx = context_address(store)
                session = self.host.session(store)
                deadline = self.host.deadline(store)
                if call is not None:
                    call.attach(session, deadline, self.store_label)
                limits = session.limits
                for change in changes:
                    if call is not None and call.stopping:
                        if call.abandoned:
                            raise DeliveryFailed("given up by its runner", delivered)
                        break
                    if len(session.buckets) >= limits.max_open_buckets:
                        if delivered:
                            break  # the rest go to a fresh instance
                        raise DeliveryFailed(
                            "no bucket handle can be opened (max_open_buckets)", 0, retry=False
                        )
                    if change.value is not None and len(change.value) > limits.max_value_bytes:
                        raise DeliveryFailed(
                            f"the value of key {change.key!r} is {len(change.value)} bytes, more than "
                            f"max_value_bytes={limits.max_value_bytes} allows passing to a guest",
                            delivered,
                            retry=False,
                        )
                    deadline.restart()
                    _call_watcher(
                        store,
                        ctx,
                        on_set if change.value is not None else on_delete,
                        session,
                        self.store_label,
                        change,
                    )
                    delivered += 1
                    if call is not None:
                        call.delivered = delivered
        except DeliveryFailed as failure:
            failure.delivered = delivered
            raise
        except (WasikvError, KeyValueError) as exc:
            raise DeliveryFailed(str(exc), delivered) from exc
        except Exception as exc:
            log.debug("watcher %s: unexpected error", self.name, exc_info=True)
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}", delivered) from exc
        return delivered

    def _instance(self) -> _CapturedInstance:
        return _CapturedInstance(self)


class _CapturedInstance:
    """`Host.instantiate` with the guest's output logged (up to its bound) when the instance ends."""

    def __init__(self, watcher: WatcherComponent) -> None:
        self.watcher = watcher
        limit = watcher.host.limits.max_output_bytes
        self.stdout = CapturedOutput(limit)
        self.stderr = CapturedOutput(limit)
        self._context: Any = None

    def __enter__(self) -> tuple[WasmStore, Instance]:
        w = self.watcher
        self._context = w.host.instantiate(w.component, w.spec.with_output(self.stdout, self.stderr))
        pair: tuple[WasmStore, Instance] = self._context.__enter__()
        return pair

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._context.__exit__(exc_type, exc, tb)
        finally:
            w = self.watcher
            log_guest_output(w.name, self.stdout, self.stderr)


def _watcher_funcs(store: WasmStore, instance: Instance, interface: str) -> tuple[Func, Func]:
    on_set, on_delete = (
        export_func(store, instance, interface, name, WATCH_WORLD) for name in ("on-set", "on-delete")
    )
    return on_set, on_delete


def _call_watcher(
    store: WasmStore, ctx: int, func: Func, session: KeyValueSession, label: str, change: Change
) -> None:
    rep = session.open_bucket(label)
    args: list[cv.Filler] = [
        lambda addr: cv.put_own_resource(ctx, addr, rep, BUCKET_TYPE),
        partial(cv.put_string, value=change.key),
    ]
    if change.value is not None:
        args.append(partial(cv.put_bytes, value=change.value))
    try:
        call_export(store, func, args)
    except GuestTrap as trap:
        raise DeliveryFailed(str(trap), 0) from None
    except BaseException:
        # The handle never reached the guest.
        session.drop_bucket(rep)
        raise
