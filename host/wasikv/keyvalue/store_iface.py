"""`wasi:keyvalue/store`: open buckets and single-key operations."""

from __future__ import annotations

from functools import partial

from wasmtime.component import LinkerInstance

from .. import _canonical as cv
from .. import _capi
from . import cursor
from ._wire import bucket_arg, guarded, put_ok_option_bytes, put_ok_unit
from .session import KeyValueSession

INTERFACE = "wasi:keyvalue/store@0.2.0-draft2"
BUCKET_TYPE = 0x6B76_0001


def define(instance: LinkerInstance, sessions: dict[int, KeyValueSession]) -> None:
    """Add the store interface to a linker instance."""

    @guarded
    def open_(ctx: int, args: int, results: int) -> None:
        label = cv.read_string(cv.arg(args, 0))
        rep = sessions[ctx].open_bucket(label)
        cv.put_result(results, True, lambda addr: cv.put_own_resource(ctx, addr, rep, BUCKET_TYPE))

    @guarded
    def get(ctx: int, args: int, results: int) -> None:
        session, store = bucket_arg(sessions, ctx, args)
        key = cv.read_string(cv.arg(args, 1))
        session.limits.check_key(key)
        value = store.get(key)
        if value is not None:
            # A value written by another client may exceed what one call can carry.
            session.limits.check_value(value)
        put_ok_option_bytes(results, value)

    @guarded
    def set_(ctx: int, args: int, results: int) -> None:
        session, store = bucket_arg(sessions, ctx, args)
        key = cv.read_string(cv.arg(args, 1))
        session.limits.check_key(key)
        value_addr = cv.arg(args, 2)
        session.limits.check_value_size(cv.list_len(value_addr))
        store.set(key, cv.read_bytes(value_addr))
        put_ok_unit(results)

    @guarded
    def delete(ctx: int, args: int, results: int) -> None:
        session, store = bucket_arg(sessions, ctx, args)
        key = cv.read_string(cv.arg(args, 1))
        session.limits.check_key(key)
        store.delete(key)
        put_ok_unit(results)

    @guarded
    def exists(ctx: int, args: int, results: int) -> None:
        session, store = bucket_arg(sessions, ctx, args)
        key = cv.read_string(cv.arg(args, 1))
        session.limits.check_key(key)
        cv.put_ok_bool(results, store.exists(key))

    @guarded
    def list_keys(ctx: int, args: int, results: int) -> None:
        session, store = bucket_arg(sessions, ctx, args)
        raw_cursor = cv.read_option_string(cv.arg(args, 1))
        after = None if raw_cursor is None else cursor.decode(raw_cursor)
        page_size = session.limits.list_page_size
        keys = store.list_keys(after, page_size + 1)
        next_cursor = cursor.encode(keys[page_size - 1]) if len(keys) > page_size else None
        keys = keys[:page_size]
        cv.put_result(results, True, partial(_put_key_response, keys=keys, next_cursor=next_cursor))

    def drop_bucket(ctx: int, rep: int) -> None:
        session = sessions.get(ctx)
        if session is not None:
            session.buckets.pop(rep, None)

    _capi.define_resource(instance, "bucket", BUCKET_TYPE, drop_bucket)
    _capi.define_func(instance, "open", open_)
    _capi.define_func(instance, "[method]bucket.get", get)
    _capi.define_func(instance, "[method]bucket.set", set_)
    _capi.define_func(instance, "[method]bucket.delete", delete)
    _capi.define_func(instance, "[method]bucket.exists", exists)
    _capi.define_func(instance, "[method]bucket.list-keys", list_keys)


def _put_key_response(addr: int, keys: list[str], next_cursor: str | None) -> None:
    cv.put_record(
        addr,
        [
            ("keys", lambda a: cv.put_list(a, [partial(cv.put_string, value=k) for k in keys])),
            (
                "cursor",
                lambda a: cv.put_option(
                    a, None if next_cursor is None else partial(cv.put_string, value=next_cursor)
                ),
            ),
        ],
    )
