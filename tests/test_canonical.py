"""The codec against real `wasmtime_component_val_t` memory: every kind, written and read back."""

from __future__ import annotations

import ctypes
import struct
from typing import Any

import pytest
from wasmtime import Engine, Store

from wasikv.runtime import _canonical as cv
from wasikv.runtime import _capi
from wasikv.runtime.codec import Case, Err, Ok, reader, writer
from wasikv.runtime.wit_types import (
    BOOL,
    S8,
    S16,
    S32,
    S64,
    STRING,
    U8,
    U16,
    U32,
    U64,
    ListOf,
    OptionOf,
    Own,
    RecordOf,
    ResultOf,
    TupleOf,
    VariantOf,
    WitType,
)

ERROR = VariantOf((("no-such-store", None), ("access-denied", None), ("other", STRING)))
CASES: list[tuple[WitType, Any]] = [
    (BOOL, True),
    (BOOL, False),
    (U8, 255),
    (S8, -128),
    (U16, 65535),
    (S16, -32768),
    (U32, 2**32 - 1),
    (S32, -(2**31)),
    (U64, 2**64 - 1),
    (S64, -(2**63)),
    (S64, 2**63 - 1),
    (STRING, ""),
    (STRING, "ünïcødé ✓ and NUL\0"),
    (ListOf(U8), b""),
    (ListOf(U8), bytes(range(256)) * 3),
    (ListOf(STRING), ["a", "", "ç"]),
    (ListOf(U64), [1, 2**63]),
    (OptionOf(STRING), None),
    (OptionOf(STRING), "x"),
    (OptionOf(OptionOf(U64)), 7),
    (TupleOf((STRING, ListOf(U8))), ("k", b"v")),
    (ListOf(TupleOf((STRING, STRING))), [("a", "b"), ("c", "")]),
    (ListOf(TupleOf((STRING, ListOf(U8)))), [("k", b"\0\1"), ("", b"")]),
    (ListOf(OptionOf(TupleOf((STRING, ListOf(U8))))), [None, ("k", b"v")]),
    (RecordOf((("keys", ListOf(STRING)), ("cursor", OptionOf(U64)))), {"keys": ["a"], "cursor": 3}),
    (ERROR, Case("access-denied")),
    (ERROR, Case("other", "why")),
    (ResultOf(None, ERROR), Ok()),
    (ResultOf(ListOf(U8), ERROR), Ok(b"data")),
    (ResultOf(ListOf(U8), ERROR), Err(Case("no-such-store"))),
]


def _round_trip(ty: WitType, value: Any, ctx: int = 0) -> Any:
    slot = ctypes.create_string_buffer(cv.VAL_SIZE)
    addr = ctypes.addressof(slot)
    writer(ty, {"bucket": 0x6B76_0001})(ctx, addr, value)
    try:
        return reader(ty)(ctx, addr)
    finally:
        _capi.val_delete(addr)  # frees every nested allocation through wasmtime


@pytest.mark.parametrize(("ty", "value"), CASES, ids=lambda x: x.render() if isinstance(x, WitType) else None)
def test_every_kind_round_trips(ty: WitType, value: Any) -> None:
    back = _round_trip(ty, value)
    if isinstance(ty, RecordOf):
        assert back == value
    elif isinstance(ty, TupleOf):
        assert back == tuple(value)
    elif isinstance(ty, ListOf) and isinstance(ty.element, TupleOf):
        assert back == [None if v is None else tuple(v) for v in value]
    else:
        assert back == value


def test_a_resource_round_trips_through_a_store_context() -> None:
    store = Store(Engine())
    ctx = _capi.context_address(store)
    assert _round_trip(Own("bucket"), 42, ctx) == 42


def test_out_of_range_integers_are_refused() -> None:
    with pytest.raises(struct.error):
        _round_trip(U8, 256)


def test_the_layout_matches_wasmtime_py() -> None:
    from wasmtime import _ffi

    assert cv.VAL_SIZE == ctypes.sizeof(_ffi.wasmtime_component_val_t) == 32
    assert cv.STRING == _ffi.WASMTIME_COMPONENT_STRING.value
    assert cv.RESOURCE == _ffi.WASMTIME_COMPONENT_RESOURCE.value
