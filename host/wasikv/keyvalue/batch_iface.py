"""`wasi:keyvalue/batch`: several keys in one call."""

from __future__ import annotations

from wasmtime.component import LinkerInstance

from .. import _canonical as cv
from .. import _capi
from ._wire import bucket_arg, guarded, put_ok_unit, read_keys
from .session import KeyValueSession

INTERFACE = "wasi:keyvalue/batch@0.2.0-draft2"


def define(instance: LinkerInstance, sessions: dict[int, KeyValueSession]) -> None:
    """Add the batch interface to a linker instance."""

    @guarded
    def get_many(ctx: int, args: int, results: int) -> None:
        session, store = bucket_arg(sessions, ctx, args)
        keys = read_keys(session, cv.arg(args, 1))
        values = store.get_many(keys)
        session.limits.check_response_bytes(sum(len(v) for v in values if v is not None))
        cv.put_ok_key_values(results, keys, values)

    @guarded
    def set_many(ctx: int, args: int, results: int) -> None:
        session, store = bucket_arg(sessions, ctx, args)
        pairs_addr = cv.arg(args, 1)
        session.limits.check_batch(cv.list_len(pairs_addr))
        pairs = cv.read_string_bytes_pairs(pairs_addr)
        for key, value in pairs:
            session.limits.check_key(key)
            session.limits.check_value(value)
        store.set_many(pairs)
        put_ok_unit(results)

    @guarded
    def delete_many(ctx: int, args: int, results: int) -> None:
        session, store = bucket_arg(sessions, ctx, args)
        store.delete_many(read_keys(session, cv.arg(args, 1)))
        put_ok_unit(results)

    _capi.define_func(instance, "get-many", get_many)
    _capi.define_func(instance, "set-many", set_many)
    _capi.define_func(instance, "delete-many", delete_many)
