"""Reading and writing `wasmtime_component_val_t` memory for wasikv's WIT types.

A `wasmtime_component_val_t` is 32 bytes: a kind byte at offset 0 and a
24-byte payload union at offset 8. Arguments of a host call are owned by
wasmtime (it drops them after the call), so readers only copy out of them.
Results are written into wasmtime-owned slots; every nested value is
allocated with wasmtime's own allocator (`val_new`, `vallist_new_uninit`,
`byte_vec_new`) so wasmtime frees it after converting the result.

`list<u8>` is the reason this module exists: wasmtime represents it as one
32-byte value per byte. Both directions move the bytes with a single strided
memoryview copy instead of a Python loop.
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Callable, Sequence

from . import _capi

VAL_SIZE = 32
BOOL, S64, U8, STRING, LIST, TUPLE, RECORD, VARIANT, OPTION, RESULT, RESOURCE = (
    0,
    7,
    2,
    12,
    13,
    15,
    14,
    16,
    18,
    19,
    21,
)

_PAIR = struct.Struct("<QQ")
_KIND_ONLY = struct.Struct("<B7x")
_KIND_U64 = struct.Struct("<B7xQ")
_KIND_Q64 = struct.Struct("<B7xq")
_KIND_RESULT = struct.Struct("<B7x?7xQ")
_string_at = ctypes.string_at
_memmove = ctypes.memmove

#: Fills the 32-byte value slot at the given address.
Filler = Callable[[int], None]


class CanonicalError(Exception):
    """A guest passed a value wasikv cannot read (a wasmtime/wasikv mismatch)."""


def _pair(addr: int) -> tuple[int, int]:
    size, data = _PAIR.unpack(_string_at(addr, 16))
    return size, data


def _u64(addr: int) -> int:
    return ctypes.c_uint64.from_address(addr).value


def kind(addr: int) -> int:
    """The kind byte of the value at `addr`."""
    return ctypes.c_uint8.from_address(addr).value


def arg(args: int, index: int) -> int:
    """Address of argument `index` in an argument array."""
    return args + index * VAL_SIZE


# ---------------------------------------------------------------- readers


def read_string(addr: int) -> str:
    """A `string` value."""
    size, data = _pair(addr + 8)
    if size == 0:
        return ""
    return _string_at(data, size).decode("utf-8")


def read_s64(addr: int) -> int:
    """An `s64` value."""
    return ctypes.c_int64.from_address(addr + 8).value


def read_bytes(addr: int) -> bytes:
    """A `list<u8>` value, copied out in one strided pass."""
    size, data = _pair(addr + 8)
    if size == 0:
        return b""
    raw = (ctypes.c_char * (size * VAL_SIZE)).from_address(data)
    return bytes(memoryview(raw).cast("B")[8::VAL_SIZE])


def list_len(addr: int) -> int:
    """The number of elements of a `list<T>` value."""
    return _pair(addr + 8)[0]


def read_option_string(addr: int) -> str | None:
    """An `option<string>` value."""
    inner = _u64(addr + 8)
    return None if inner == 0 else read_string(inner)


def read_strings(addr: int) -> list[str]:
    """A `list<string>` value."""
    size, data = _pair(addr + 8)
    return [read_string(data + i * VAL_SIZE) for i in range(size)]


def read_string_bytes_pairs(addr: int) -> list[tuple[str, bytes]]:
    """A `list<tuple<string, list<u8>>>` value."""
    size, data = _pair(addr + 8)
    pairs = []
    for i in range(size):
        _, fields = _pair(data + i * VAL_SIZE + 8)
        pairs.append((read_string(fields), read_bytes(fields + VAL_SIZE)))
    return pairs


def read_resource_rep(ctx: int, addr: int) -> int:
    """The rep of a host-defined resource passed as `own<T>` or `borrow<T>`.

    Converting the handle to a host handle is what ends a borrow (and takes
    ownership of an `own`), so this must run exactly once per resource
    argument; wasmtime drops the `resource_any` itself after the call.
    """
    any_ptr = _u64(addr + 8)
    host = ctypes.c_void_p()
    _capi.raise_if_error(
        _capi.resource_any_to_host(ctx, any_ptr, ctypes.addressof(host)), "resource argument"
    )
    try:
        return int(_capi.resource_host_rep(host.value))
    finally:
        _capi.resource_host_delete(host.value)


# ---------------------------------------------------------------- writers


def _put(addr: int, packed: bytes) -> None:
    _memmove(addr, packed, len(packed))


def boxed(fill: Filler) -> int:
    """A heap value allocated by wasmtime, filled by `fill`; returns its address."""
    slot = ctypes.create_string_buffer(VAL_SIZE)
    fill(ctypes.addressof(slot))
    return int(_capi.val_new(ctypes.addressof(slot)))


def put_bool(addr: int, value: bool) -> None:
    """Write a `bool`."""
    _put(addr, _KIND_U64.pack(BOOL, 1 if value else 0))


def put_s64(addr: int, value: int) -> None:
    """Write an `s64`."""
    _put(addr, _KIND_Q64.pack(S64, value))


def put_string(addr: int, value: str) -> None:
    """Write a `string`."""
    encoded = value.encode("utf-8")
    _put(addr, _KIND_ONLY.pack(STRING))
    _capi.byte_vec_new(addr + 8, len(encoded), encoded)


_U8_KINDS: dict[int, bytes] = {}


def put_bytes(addr: int, value: bytes) -> None:
    """Write a `list<u8>` in one strided pass."""
    size = len(value)
    _put(addr, _KIND_ONLY.pack(LIST))
    _capi.vallist_new_uninit(addr + 8, size)
    if size == 0:
        return
    _, data = _pair(addr + 8)
    view = memoryview((ctypes.c_char * (size * VAL_SIZE)).from_address(data)).cast("B")
    # Only the kind byte and the u8 payload of each element are ever read.
    view[0::VAL_SIZE] = _u8_kinds(size)
    view[8::VAL_SIZE] = value


def _u8_kinds(size: int) -> bytes:
    kinds = _U8_KINDS.get(size)
    if kinds is None:
        kinds = bytes([U8]) * size
        if size <= 4096:
            _U8_KINDS[size] = kinds
    return kinds


def put_option(addr: int, fill: Filler | None) -> None:
    """Write an `option<T>`: `none` when `fill` is None."""
    _put(addr, _KIND_U64.pack(OPTION, 0 if fill is None else boxed(fill)))


def put_result(addr: int, ok: bool, fill: Filler | None = None) -> None:
    """Write a `result<T, E>`; `fill` writes the payload, None for `_`."""
    _put(addr, _KIND_RESULT.pack(RESULT, ok, 0 if fill is None else boxed(fill)))


def put_variant(addr: int, case: str, fill: Filler | None = None) -> None:
    """Write a variant case, with a payload when `fill` is given."""
    encoded = case.encode("ascii")
    _put(addr, _KIND_ONLY.pack(VARIANT))
    _capi.byte_vec_new(addr + 8, len(encoded), encoded)
    ctypes.c_uint64.from_address(addr + 24).value = 0 if fill is None else boxed(fill)


def put_list(addr: int, fills: Sequence[Filler]) -> None:
    """Write a `list<T>` whose elements are written by `fills`."""
    _put(addr, _KIND_ONLY.pack(LIST))
    _capi.vallist_new_uninit(addr + 8, len(fills))
    _, data = _pair(addr + 8)
    for i, fill in enumerate(fills):
        fill(data + i * VAL_SIZE)


def put_tuple(addr: int, fills: Sequence[Filler]) -> None:
    """Write a `tuple<...>` whose fields are written by `fills`."""
    _put(addr, _KIND_ONLY.pack(TUPLE))
    _capi.valtuple_new_uninit(addr + 8, len(fills))
    _, data = _pair(addr + 8)
    for i, fill in enumerate(fills):
        fill(data + i * VAL_SIZE)


_RECORD_ENTRY = 16 + VAL_SIZE


def put_record(addr: int, fields: Sequence[tuple[str, Filler]]) -> None:
    """Write a record; `fields` gives each field's name and filler in WIT order."""
    _put(addr, _KIND_ONLY.pack(RECORD))
    _capi.valrecord_new_uninit(addr + 8, len(fields))
    _, data = _pair(addr + 8)
    for i, (name, fill) in enumerate(fields):
        entry = data + i * _RECORD_ENTRY
        encoded = name.encode("ascii")
        _capi.byte_vec_new(entry, len(encoded), encoded)
        fill(entry + 16)


def put_own_resource(ctx: int, addr: int, rep: int, type_id: int) -> None:
    """Write a new `own<T>` handle for the host resource `rep` of `type_id`."""
    host = _capi.resource_host_new(True, rep, type_id)
    try:
        any_ptr = ctypes.c_void_p()
        _capi.raise_if_error(_capi.resource_host_to_any(ctx, host, ctypes.addressof(any_ptr)), "resource")
    finally:
        _capi.resource_host_delete(host)
    _put(addr, _KIND_U64.pack(RESOURCE, any_ptr.value or 0))
