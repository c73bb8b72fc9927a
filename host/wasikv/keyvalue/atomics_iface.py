"""`wasi:keyvalue/atomics`: increment and version-based compare-and-swap."""

from __future__ import annotations

from wasmtime.component import LinkerInstance

from .. import _canonical as cv
from .. import _capi
from ._wire import bucket_arg, error_filler, guarded, put_ok_option_bytes
from .session import KeyValueSession

INTERFACE = "wasi:keyvalue/atomics@0.2.0-draft2"
CAS_TYPE = 0x6B76_0002


def define(instance: LinkerInstance, sessions: dict[int, KeyValueSession]) -> None:
    """Add the atomics interface to a linker instance."""

    @guarded
    def cas_new(ctx: int, args: int, results: int) -> None:
        session, store = bucket_arg(sessions, ctx, args)
        key = cv.read_string(cv.arg(args, 1))
        session.limits.check_key(key)
        rep = session.pin_cas(store, key)
        cv.put_result(results, True, lambda addr: cv.put_own_resource(ctx, addr, rep, CAS_TYPE))

    @guarded
    def cas_current(ctx: int, args: int, results: int) -> None:
        session = sessions[ctx]
        pinned = session.cas[cv.read_resource_rep(ctx, cv.arg(args, 0))].pinned
        if pinned.value is not None:
            session.limits.check_value(pinned.value)
        put_ok_option_bytes(results, pinned.value)

    @guarded
    def increment(ctx: int, args: int, results: int) -> None:
        session, store = bucket_arg(sessions, ctx, args)
        key = cv.read_string(cv.arg(args, 1))
        delta = cv.read_s64(cv.arg(args, 2))
        session.limits.check_key(key)
        cv.put_ok_s64(results, store.increment(key, delta))

    def swap(ctx: int, args: int, results: int) -> None:
        # The handle is `own<cas>`: the guest gives it up, so it leaves the
        # table whatever the outcome.
        session = sessions[ctx]
        handle = session.cas.pop(cv.read_resource_rep(ctx, cv.arg(args, 0)))
        try:
            value_addr = cv.arg(args, 1)
            session.limits.check_value_size(cv.list_len(value_addr))
            swapped = handle.store.swap(handle.key, handle.pinned.version, cv.read_bytes(value_addr))
            if swapped:
                cv.put_result(results, True)
                return
            rep = session.pin_cas(handle.store, handle.key)
        except Exception as exc:
            failure = error_filler(exc)
            cv.put_result(results, False, lambda addr: cv.put_variant(addr, "store-error", failure))
            return
        cv.put_result(
            results,
            False,
            lambda addr: cv.put_variant(
                addr, "cas-failed", lambda inner: cv.put_own_resource(ctx, inner, rep, CAS_TYPE)
            ),
        )

    def drop_cas(ctx: int, rep: int) -> None:
        session = sessions.get(ctx)
        if session is not None:
            session.cas.pop(rep, None)

    _capi.define_resource(instance, "cas", CAS_TYPE, drop_cas)
    _capi.define_func(instance, "[static]cas.new", cas_new)
    _capi.define_func(instance, "[method]cas.current", cas_current)
    _capi.define_func(instance, "increment", increment)
    _capi.define_func(instance, "swap", swap)
