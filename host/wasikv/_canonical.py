"""Reading and writing `wasmtime_component_val_t` memory for wasikv's WIT types.

A `wasmtime_component_val_t` is 32 bytes: a kind byte at offset 0 and a
24-byte payload union at offset 8. Arguments of a host call are owned by
wasmtime (it drops them after the call), so readers only copy out of them.
Results are written into wasmtime-owned slots; every nested value is
allocated with wasmtime's own allocator (`val_new`, `vallist_new_uninit`,
`byte_vec_new`) so wasmtime frees it after converting the result.

Memory is accessed through `_MEM`, one byte view of the address space:
`struct.pack_into`/`unpack_from` and slices on it cost a fraction of a ctypes
call, which matters on a path taken for every guest call.

`list<u8>` is the reason this module exists: wasmtime represents it as one
32-byte value per byte. Both directions move the bytes with one strided
slice copy instead of a Python loop.
"""

from __future__ import annotations

import ctypes
import struct
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from . import _capi

VAL_SIZE = 32
BOOL = 0
U8 = 2
S64 = 7
STRING = 12
LIST = 13
RECORD = 14
TUPLE = 15
VARIANT = 16
OPTION = 18
RESULT = 19
RESOURCE = 21

# Every user-space address on 64-bit Linux and macOS is below 2**48.
_MEM = memoryview((ctypes.c_char * (1 << 48)).from_address(0)).cast("B")

_U64 = struct.Struct("<Q")
_S64 = struct.Struct("<q")
_PAIR = struct.Struct("<QQ")
_KIND_ONLY = struct.Struct("<B7x")
_KIND_U64 = struct.Struct("<B7xQ")
_KIND_Q64 = struct.Struct("<B7xq")
_KIND_RESULT = struct.Struct("<B7x?7xQ")
_unpack_pair = _PAIR.unpack_from
_unpack_u64 = _U64.unpack_from

_V = TypeVar("_V")

#: Fills the 32-byte value slot at the given address.
Filler = Callable[[int], None]


def _pair(addr: int) -> tuple[int, int]:
    size, data = _unpack_pair(_MEM, addr)
    return size, data


def _u64(addr: int) -> int:
    value: int = _unpack_u64(_MEM, addr)[0]
    return value


def kind(addr: int) -> int:
    """The kind byte of the value at `addr`."""
    return _MEM[addr]


def arg(args: int, index: int) -> int:
    """Address of argument `index` in an argument array."""
    return args + index * VAL_SIZE


class _Scratch(threading.local):
    """Per-thread buffers, so concurrent host calls never share scratch memory."""

    def __init__(self) -> None:
        self.slot = ctypes.create_string_buffer(VAL_SIZE)
        self.slot_addr = ctypes.addressof(self.slot)
        self.out = ctypes.c_void_p()
        self.out_addr = ctypes.addressof(self.out)


_scratch = _Scratch()


# ---------------------------------------------------------------- readers


def read_string(addr: int) -> str:
    """A `string` value."""
    size, data = _unpack_pair(_MEM, addr + 8)
    if size == 0:
        return ""
    return str(_MEM[data : data + size], "utf-8")


def read_s64(addr: int) -> int:
    """An `s64` value."""
    value: int = _S64.unpack_from(_MEM, addr + 8)[0]
    return value


def list_len(addr: int) -> int:
    """The number of elements of a `list<T>` value."""
    return _u64(addr + 8)


def read_bytes(addr: int) -> bytes:
    """A `list<u8>` value, copied out in one strided pass."""
    size, data = _unpack_pair(_MEM, addr + 8)
    if size == 0:
        return b""
    start = data + 8
    return bytes(_MEM[start : start + size * VAL_SIZE : VAL_SIZE])


def read_u16(addr: int) -> int:
    """A `u16` value."""
    value: int = struct.unpack_from("<H", _MEM, addr + 8)[0]
    return value


def _read_keyed_pairs(addr: int, second: Callable[[int], _V]) -> list[tuple[str, _V]]:
    # A list<tuple<string, T>>: each tuple's fields are two values in a row.
    size, data = _pair(addr + 8)
    pairs = []
    for i in range(size):
        fields = _u64(data + i * VAL_SIZE + 16)
        pairs.append((read_string(fields), second(fields + VAL_SIZE)))
    return pairs


def read_string_pairs(addr: int) -> list[tuple[str, str]]:
    """A `list<tuple<string, string>>` value."""
    return _read_keyed_pairs(addr, read_string)


def read_record(addr: int) -> dict[str, int]:
    """The field addresses of a record value, by field name."""
    size, data = _pair(addr + 8)
    fields = {}
    for i in range(size):
        entry = data + i * (16 + VAL_SIZE)
        fields[read_name(entry)] = entry + 16
    return fields


def read_name(addr: int) -> str:
    """A `wasm_name_t` (size, data) at `addr`."""
    size, data = _pair(addr)
    return str(_MEM[data : data + size], "utf-8") if size else ""


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
    return _read_keyed_pairs(addr, read_bytes)


def read_resource_rep(ctx: int, addr: int) -> int:
    """The rep of a host-defined resource passed as `own<T>` or `borrow<T>`.

    Converting the handle to a host handle is what ends a borrow (and takes
    ownership of an `own`), so this must run exactly once per resource
    argument; wasmtime drops the `resource_any` itself after the call.
    """
    scratch = _scratch
    error = _capi.resource_any_to_host(ctx, _u64(addr + 8), scratch.out_addr)
    if error:
        _capi.raise_if_error(error, "resource argument")
    host = scratch.out.value
    rep = int(_capi.resource_host_rep(host))
    _capi.resource_host_delete(host)
    return rep


# ---------------------------------------------------------------- writers


def _boxed_packed(packed: bytes) -> int:
    # val_new moves out of (and resets) its argument, so it needs writable
    # memory: the thread's scratch slot.
    slot = _scratch.slot_addr
    _MEM[slot : slot + len(packed)] = packed
    return int(_capi.val_new(slot))


def boxed(fill: Filler) -> int:
    """A heap value allocated by wasmtime, filled by `fill`; returns its address."""
    slot = ctypes.create_string_buffer(VAL_SIZE)
    fill(ctypes.addressof(slot))
    return int(_capi.val_new(ctypes.addressof(slot)))


def put_bool(addr: int, value: bool) -> None:
    """Write a `bool`."""
    _KIND_U64.pack_into(_MEM, addr, BOOL, 1 if value else 0)


def put_s64(addr: int, value: int) -> None:
    """Write an `s64`."""
    _KIND_Q64.pack_into(_MEM, addr, S64, value)


def put_string(addr: int, value: str) -> None:
    """Write a `string`."""
    encoded = value.encode("utf-8")
    _MEM[addr] = STRING
    _capi.byte_vec_new(addr + 8, len(encoded), encoded)


_U8_KINDS: dict[int, bytes] = {}


def put_bytes(addr: int, value: bytes) -> None:
    """Write a `list<u8>` in one strided pass (plus one for the kind bytes)."""
    size = len(value)
    _MEM[addr] = LIST
    _capi.vallist_new_uninit(addr + 8, size)
    if size == 0:
        return
    data = _u64(addr + 16)
    end = data + size * VAL_SIZE
    # Only the kind byte and the u8 payload of each element are ever read.
    _MEM[data:end:VAL_SIZE] = _u8_kinds(size)
    _MEM[data + 8 : end + 8 : VAL_SIZE] = value


def _u8_kinds(size: int) -> bytes:
    kinds = _U8_KINDS.get(size)
    if kinds is None:
        kinds = bytes([U8]) * size
        if size <= 4096:
            _U8_KINDS[size] = kinds
    return kinds


def put_option(addr: int, fill: Filler | None) -> None:
    """Write an `option<T>`: `none` when `fill` is None."""
    payload = 0 if fill is None else boxed(fill)
    _KIND_U64.pack_into(_MEM, addr, OPTION, payload)


def put_result(addr: int, ok: bool, fill: Filler | None = None) -> None:
    """Write a `result<T, E>`; `fill` writes the payload, None for `_`."""
    payload = 0 if fill is None else boxed(fill)
    _KIND_RESULT.pack_into(_MEM, addr, RESULT, ok, payload)


def put_variant(addr: int, case: str, fill: Filler | None = None) -> None:
    """Write a variant case, with a payload when `fill` is given."""
    payload = 0 if fill is None else boxed(fill)
    encoded = case.encode("ascii")
    _MEM[addr] = VARIANT
    _capi.byte_vec_new(addr + 8, len(encoded), encoded)
    _U64.pack_into(_MEM, addr + 24, payload)


def put_list(addr: int, fills: Sequence[Filler]) -> None:
    """Write a `list<T>` whose elements are written by `fills`."""
    _MEM[addr] = LIST
    _capi.vallist_new_uninit(addr + 8, len(fills))
    data = _u64(addr + 16)
    for i, fill in enumerate(fills):
        fill(data + i * VAL_SIZE)


def put_tuple(addr: int, fills: Sequence[Filler]) -> None:
    """Write a `tuple<...>` whose fields are written by `fills`."""
    _MEM[addr] = TUPLE
    _capi.valtuple_new_uninit(addr + 8, len(fills))
    data = _u64(addr + 16)
    for i, fill in enumerate(fills):
        fill(data + i * VAL_SIZE)


_RECORD_ENTRY = 16 + VAL_SIZE


def put_record(addr: int, fields: Sequence[tuple[str, Filler]]) -> None:
    """Write a record; `fields` gives each field's name and filler in WIT order."""
    _MEM[addr] = RECORD
    _capi.valrecord_new_uninit(addr + 8, len(fields))
    data = _u64(addr + 16)
    for i, (name, fill) in enumerate(fields):
        entry = data + i * _RECORD_ENTRY
        encoded = name.encode("ascii")
        _capi.byte_vec_new(entry, len(encoded), encoded)
        fill(entry + 16)


def put_own_resource(ctx: int, addr: int, rep: int, type_id: int) -> None:
    """Write a new `own<T>` handle for the host resource `rep` of `type_id`."""
    host = _capi.resource_host_new(True, rep, type_id)
    scratch = _scratch
    try:
        error = _capi.resource_host_to_any(ctx, host, scratch.out_addr)
        if error:
            _capi.raise_if_error(error, "resource")
    finally:
        _capi.resource_host_delete(host)
    _KIND_U64.pack_into(_MEM, addr, RESOURCE, scratch.out.value or 0)


# ------------------------------------------------- whole results, fast paths


def put_string_pair(addr: int, pair: tuple[str, str]) -> None:
    """Write a `tuple<string, string>`."""
    _MEM[addr] = TUPLE
    _capi.valtuple_new_uninit(addr + 8, 2)
    fields = _u64(addr + 16)
    put_string(fields, pair[0])
    put_string(fields + VAL_SIZE, pair[1])


def put_ok_unit(results: int) -> None:
    """Write `ok(_)`."""
    _KIND_RESULT.pack_into(_MEM, results, RESULT, True, 0)


def put_ok_bool(results: int, value: bool) -> None:
    """Write `ok(bool)`."""
    payload = _boxed_packed(_KIND_U64.pack(BOOL, 1 if value else 0))
    _KIND_RESULT.pack_into(_MEM, results, RESULT, True, payload)


def put_ok_s64(results: int, value: int) -> None:
    """Write `ok(s64)`."""
    payload = _boxed_packed(_KIND_Q64.pack(S64, value))
    _KIND_RESULT.pack_into(_MEM, results, RESULT, True, payload)


_OPTION_NONE = _KIND_U64.pack(OPTION, 0)


def put_ok_option_bytes(results: int, value: bytes | None) -> None:
    """Write `ok(option<list<u8>>)`."""
    if value is None:
        option = _boxed_packed(_OPTION_NONE)
    else:
        slot = _scratch.slot_addr
        put_bytes(slot, value)  # writes no nested boxes, so the slot is ours
        option = _boxed_packed(_KIND_U64.pack(OPTION, _capi.val_new(slot)))
    _KIND_RESULT.pack_into(_MEM, results, RESULT, True, option)


def put_ok_key_values(results: int, keys: Sequence[str], values: Sequence[bytes | None]) -> None:
    """Write `ok(list<tuple<string, option<list<u8>>>>)` (batch.get-many)."""
    slot = _scratch.slot_addr
    _MEM[slot] = LIST
    _capi.vallist_new_uninit(slot + 8, len(keys))
    data = _u64(slot + 16)
    for i, (key, value) in enumerate(zip(keys, values, strict=True)):
        entry = data + i * VAL_SIZE
        _MEM[entry] = TUPLE
        _capi.valtuple_new_uninit(entry + 8, 2)
        fields = _u64(entry + 16)
        put_string(fields, key)
        if value is None:
            _KIND_U64.pack_into(_MEM, fields + VAL_SIZE, OPTION, 0)
        else:
            # Build the list in the option's own slot, move it into a box, then
            # write the option over the emptied slot (the outer list owns scratch).
            inner = fields + VAL_SIZE
            put_bytes(inner, value)
            _KIND_U64.pack_into(_MEM, inner, OPTION, _capi.val_new(inner))
    _KIND_RESULT.pack_into(_MEM, results, RESULT, True, _capi.val_new(slot))
