"""Reading and writing `wasmtime_component_val_t` memory, one value kind at a time.

A `wasmtime_component_val_t` is a kind byte followed by a payload union;
the layout constants below come from wasmtime-py's own ctypes definitions
(`_ffi`) and are checked against them at import. Arguments of a host call
are owned by wasmtime (it drops them after the call), so readers only copy
out of them. Results are written into wasmtime-owned slots; every nested
value is allocated with wasmtime's own allocator (`val_new`,
`vallist_new_uninit`, `byte_vec_new`) so wasmtime frees it after converting
the result.

Every reader checks the kind byte of the value it reads and raises
`CodecError` on a mismatch, so no input (a component whose types differ
from what wasikv declared, a bug) can make the host follow a payload as a
pointer it is not. `codec` builds whole readers and writers for WIT types
out of these pieces.

Memory is accessed through `_MEM`, one byte view of the address space:
`struct.pack_into`/`unpack_from` and slices on it cost a fraction of a ctypes
call, which matters on a path taken for every guest call. `list<u8>` is why
this module exists: wasmtime represents it as one value per byte, and both
directions move the bytes with one strided slice copy instead of a loop.
"""

from __future__ import annotations

import ctypes
import struct
import threading
from collections.abc import Callable, Sequence

from wasmtime import _ffi

from . import _capi


def _offset(struct_type: type, field_name: str) -> int:
    offset: int = getattr(struct_type, field_name).offset
    return offset


_VAL = _ffi.wasmtime_component_val_t
VAL_SIZE = ctypes.sizeof(_VAL)
_PAYLOAD = _offset(_VAL, "of")
_RECORD_ENTRY = ctypes.sizeof(_ffi.wasmtime_component_valrecord_entry_t)
_ENTRY_VAL = _offset(_ffi.wasmtime_component_valrecord_entry_t, "val")

BOOL = _ffi.WASMTIME_COMPONENT_BOOL.value
S8 = _ffi.WASMTIME_COMPONENT_S8.value
U8 = _ffi.WASMTIME_COMPONENT_U8.value
S16 = _ffi.WASMTIME_COMPONENT_S16.value
U16 = _ffi.WASMTIME_COMPONENT_U16.value
S32 = _ffi.WASMTIME_COMPONENT_S32.value
U32 = _ffi.WASMTIME_COMPONENT_U32.value
S64 = _ffi.WASMTIME_COMPONENT_S64.value
U64 = _ffi.WASMTIME_COMPONENT_U64.value
STRING = _ffi.WASMTIME_COMPONENT_STRING.value
LIST = _ffi.WASMTIME_COMPONENT_LIST.value
RECORD = _ffi.WASMTIME_COMPONENT_RECORD.value
TUPLE = _ffi.WASMTIME_COMPONENT_TUPLE.value
VARIANT = _ffi.WASMTIME_COMPONENT_VARIANT.value
OPTION = _ffi.WASMTIME_COMPONENT_OPTION.value
RESULT = _ffi.WASMTIME_COMPONENT_RESULT.value
RESOURCE = _ffi.WASMTIME_COMPONENT_RESOURCE.value
ENUM = _ffi.WASMTIME_COMPONENT_ENUM.value

KIND_NAMES = {
    getattr(_ffi, name).value: name.removeprefix("WASMTIME_COMPONENT_").lower()
    for name in dir(_ffi)
    if name.startswith("WASMTIME_COMPONENT_")
    and not name.startswith(("WASMTIME_COMPONENT_VALTYPE_", "WASMTIME_COMPONENT_ITEM_"))
    and isinstance(getattr(_ffi, name), ctypes.c_uint8)
}


def _check_layout() -> None:
    # The struct formats below hard-code this layout; a wasmtime-py upgrade
    # that changes it must fail loudly here, not corrupt memory later.
    union = _ffi.wasmtime_component_valunion_t
    expected = {
        "size": (VAL_SIZE, 32),
        "payload offset": (_PAYLOAD, 8),
        "record entry": (_RECORD_ENTRY, 48),
        "record entry value offset": (_ENTRY_VAL, 16),
        "string size/data": (
            (_offset(_ffi.wasm_byte_vec_t, "size"), _offset(_ffi.wasm_byte_vec_t, "data")),
            (0, 8),
        ),
        "list size/data": (
            (
                _offset(_ffi.wasmtime_component_vallist_t, "size"),
                _offset(_ffi.wasmtime_component_vallist_t, "data"),
            ),
            (0, 8),
        ),
        "variant value offset": (_offset(_ffi.wasmtime_component_valvariant_t, "val"), 16),
        "result value offset": (_offset(_ffi.wasmtime_component_valresult_t, "val"), 8),
        "resource pointer offset": (_offset(union, "resource"), 0),
    }
    wrong = [name for name, (actual, wanted) in expected.items() if actual != wanted]
    if wrong:
        raise ImportError(f"wasmtime_component_val_t layout changed ({', '.join(wrong)}); update wasikv")


_check_layout()

# Every user-space address on 64-bit Linux and macOS is below 2**48.
_MEM = memoryview((ctypes.c_char * (1 << 48)).from_address(0)).cast("B")

_U64 = struct.Struct("<Q")
_PAIR = struct.Struct("<QQ")
_KIND_U64 = struct.Struct("<B7xQ")
_KIND_Q64 = struct.Struct("<B7xq")
_KIND_RESULT = struct.Struct("<B7x?7xQ")
_unpack_pair = _PAIR.unpack_from
_unpack_u64 = _U64.unpack_from

#: Fills the value slot at the given address.
Filler = Callable[[int], None]


class CodecError(Exception):
    """A value's kind is not the one its type requires (a mistyped component or a bug)."""


def _kind_error(addr: int, expected: int) -> CodecError:
    found = _MEM[addr]
    return CodecError(
        f"value kind mismatch: expected {KIND_NAMES.get(expected, expected)}, "
        f"found {KIND_NAMES.get(found, f'kind {found}')}"
    )


def _pair(addr: int) -> tuple[int, int]:
    size, data = _unpack_pair(_MEM, addr)
    return size, data


def _u64(addr: int) -> int:
    value: int = _unpack_u64(_MEM, addr)[0]
    return value


def kind(addr: int) -> int:
    """The kind byte of the value at `addr`."""
    return _MEM[addr]


def expect(addr: int, expected: int) -> None:
    """Raise `CodecError` unless the value at `addr` is of kind `expected`."""
    if _MEM[addr] != expected:
        raise _kind_error(addr, expected)


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


_PRIM_FORMATS = {
    BOOL: struct.Struct("<?"),
    S8: struct.Struct("<b"),
    U8: struct.Struct("<B"),
    S16: struct.Struct("<h"),
    U16: struct.Struct("<H"),
    S32: struct.Struct("<i"),
    U32: struct.Struct("<I"),
    S64: struct.Struct("<q"),
    U64: struct.Struct("<Q"),
}


def prim_reader(expected: int) -> Callable[[int], int | bool]:
    """A reader of one integer or bool kind."""
    unpack = _PRIM_FORMATS[expected].unpack_from

    def read(addr: int) -> int | bool:
        if _MEM[addr] != expected:
            raise _kind_error(addr, expected)
        value: int | bool = unpack(_MEM, addr + _PAYLOAD)[0]
        return value

    return read


read_s64 = prim_reader(S64)
read_u64 = prim_reader(U64)
read_u16 = prim_reader(U16)


def read_string(addr: int) -> str:
    """A `string` value."""
    if _MEM[addr] != STRING:
        raise _kind_error(addr, STRING)
    size, data = _unpack_pair(_MEM, addr + _PAYLOAD)
    if size == 0:
        return ""
    return str(_MEM[data : data + size], "utf-8")


def list_len(addr: int) -> int:
    """The number of elements of a `list<T>` value."""
    if _MEM[addr] != LIST:
        raise _kind_error(addr, LIST)
    return _u64(addr + _PAYLOAD)


def list_items(addr: int) -> range:
    """The element addresses of a `list<T>` value."""
    if _MEM[addr] != LIST:
        raise _kind_error(addr, LIST)
    size, data = _pair(addr + _PAYLOAD)
    return range(data, data + size * VAL_SIZE, VAL_SIZE)


def tuple_items(addr: int, count: int) -> range:
    """The field addresses of a `tuple<...>` value of `count` fields."""
    if _MEM[addr] != TUPLE:
        raise _kind_error(addr, TUPLE)
    size, data = _pair(addr + _PAYLOAD)
    if size != count:
        raise CodecError(f"value kind mismatch: expected a tuple of {count}, found one of {size}")
    return range(data, data + size * VAL_SIZE, VAL_SIZE)


def read_bytes(addr: int) -> bytes:
    """A `list<u8>` value, copied out in one strided pass."""
    if _MEM[addr] != LIST:
        raise _kind_error(addr, LIST)
    size, data = _unpack_pair(_MEM, addr + _PAYLOAD)
    if size == 0:
        return b""
    # A list's elements share one type, so checking the first is enough; and
    # only each element's payload byte is read, which stays inside it.
    if _MEM[data] != U8:
        raise _kind_error(data, U8)
    # One contiguous copy of the elements, then a strided slice of that copy:
    # both plain C loops, unlike a strided slice of the memoryview itself
    # (about 3x slower). Large lists go a chunk at a time to bound the copy.
    end = data + size * VAL_SIZE
    if size <= _U8_CHUNK:
        return _MEM[data:end].tobytes()[_PAYLOAD::VAL_SIZE]
    step = _U8_CHUNK * VAL_SIZE
    return b"".join(
        _MEM[start : min(start + step, end)].tobytes()[_PAYLOAD::VAL_SIZE] for start in range(data, end, step)
    )


def read_strings(addr: int) -> list[str]:
    """A `list<string>` value."""
    return [read_string(item) for item in list_items(addr)]


def _read_keyed_pairs(addr: int, second: Callable[[int], object]) -> list[tuple[str, object]]:
    # A list<tuple<string, T>>: each tuple's fields are two values in a row.
    pairs = []
    for item in list_items(addr):
        first, rest = tuple_items(item, 2)
        pairs.append((read_string(first), second(rest)))
    return pairs


def read_string_pairs(addr: int) -> list[tuple[str, str]]:
    """A `list<tuple<string, string>>` value."""
    return _read_keyed_pairs(addr, read_string)  # type: ignore[return-value]


def read_string_bytes_pairs(addr: int) -> list[tuple[str, bytes]]:
    """A `list<tuple<string, list<u8>>>` value."""
    return _read_keyed_pairs(addr, read_bytes)  # type: ignore[return-value]


def record_fields(addr: int, names: Sequence[str]) -> list[int]:
    """The field value addresses of a record whose fields are `names`, in order."""
    if _MEM[addr] != RECORD:
        raise _kind_error(addr, RECORD)
    size, data = _pair(addr + _PAYLOAD)
    found = [read_name(data + i * _RECORD_ENTRY) for i in range(size)]
    if found != list(names):
        raise CodecError(f"value kind mismatch: expected record fields {list(names)}, found {found}")
    return [data + i * _RECORD_ENTRY + _ENTRY_VAL for i in range(size)]


def read_name(addr: int) -> str:
    """A `wasm_name_t` (size, data) at `addr`."""
    size, data = _pair(addr)
    return str(_MEM[data : data + size], "utf-8") if size else ""


def option_payload(addr: int) -> int:
    """The payload address of an `option<T>` value, 0 for `none`."""
    if _MEM[addr] != OPTION:
        raise _kind_error(addr, OPTION)
    return _u64(addr + _PAYLOAD)


def read_option_string(addr: int) -> str | None:
    """An `option<string>` value."""
    inner = option_payload(addr)
    return None if inner == 0 else read_string(inner)


def result_parts(addr: int) -> tuple[bool, int]:
    """(is ok, payload address or 0) of a `result<T, E>` value."""
    if _MEM[addr] != RESULT:
        raise _kind_error(addr, RESULT)
    return bool(_MEM[addr + _PAYLOAD]), _u64(addr + _PAYLOAD + 8)


def variant_parts(addr: int) -> tuple[str, int]:
    """(case name, payload address or 0) of a variant value."""
    if _MEM[addr] != VARIANT:
        raise _kind_error(addr, VARIANT)
    return read_name(addr + _PAYLOAD), _u64(addr + _PAYLOAD + 16)


def read_enum(addr: int) -> str:
    """The case name of an enum value."""
    if _MEM[addr] != ENUM:
        raise _kind_error(addr, ENUM)
    return read_name(addr + _PAYLOAD)


def read_resource_rep(ctx: int, addr: int) -> int:
    """The rep of a host-defined resource passed as `own<T>` or `borrow<T>`.

    Converting the handle to a host handle is what ends a borrow (and takes
    ownership of an `own`), so this must run exactly once per resource
    argument; wasmtime drops the `resource_any` itself after the call.
    """
    if _MEM[addr] != RESOURCE:
        raise _kind_error(addr, RESOURCE)
    out = _scratch.out_addr
    error = _resource_any_to_host(ctx, _unpack_u64(_MEM, addr + _PAYLOAD)[0], out)
    if error:
        _capi.raise_if_error(error, "resource argument")
    # The host handle's address read back from the per-thread slot with the
    # same struct unpack as any value, not through a ctypes attribute.
    host = _unpack_u64(_MEM, out)[0]
    rep: int = _resource_host_rep(host)
    _resource_host_delete(host)
    return rep


_resource_any_to_host = _capi.resource_any_to_host
_resource_host_rep = _capi.resource_host_rep
_resource_host_delete = _capi.resource_host_delete


def drop_foreign_resource(ctx: int, addr: int) -> None:
    """Drop an `own<T>` argument of a resource wasmtime implements (not wasikv), now.

    wasmtime frees the argument's `resource_any` after the call, but not the
    resource it owns: without this it would live as long as the instance.
    """
    if _MEM[addr] != RESOURCE:
        raise _kind_error(addr, RESOURCE)
    error = _capi.resource_any_drop(ctx, _u64(addr + _PAYLOAD))
    if error:
        _capi.raise_if_error(error, "resource argument")


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


def prim_writer(kind_code: int) -> Callable[[int, int | bool], None]:
    """A writer of one integer or bool kind (raises `struct.error` when out of range)."""
    pack = _PRIM_FORMATS[kind_code].pack_into

    def write(addr: int, value: int | bool) -> None:
        _MEM[addr] = kind_code
        pack(_MEM, addr + _PAYLOAD, value)

    return write


def put_string(addr: int, value: str) -> None:
    """Write a `string`."""
    encoded = value.encode("utf-8")
    _MEM[addr] = STRING
    _capi.byte_vec_new(addr + _PAYLOAD, len(encoded), encoded)


#: Elements of a `list<u8>` moved per contiguous copy (128 KiB of values).
_U8_CHUNK = 4096
# `_U8_CHUNK` u8 values, each a kind byte then zeros, to copy and fill in.
_U8_TEMPLATE = memoryview((bytes([U8]) + bytes(VAL_SIZE - 1)) * _U8_CHUNK)


def put_bytes(addr: int, value: bytes) -> None:
    """Write a `list<u8>`: its elements are built in a template copy, then copied in contiguously."""
    size = len(value)
    _MEM[addr] = LIST
    _capi.vallist_new_uninit(addr + _PAYLOAD, size)
    if size == 0:
        return
    data = _u64(addr + _PAYLOAD + 8)
    # Only the kind byte and the u8 payload of each element are ever read;
    # filling a bytearray and copying it whole beats two strided slice
    # assignments into the memoryview (about 2.5x at 100 bytes).
    if size <= _U8_CHUNK:
        elements = bytearray(_U8_TEMPLATE[: size * VAL_SIZE])
        elements[_PAYLOAD::VAL_SIZE] = value
        _MEM[data : data + size * VAL_SIZE] = elements
        return
    for first in range(0, size, _U8_CHUNK):
        part = value[first : first + _U8_CHUNK]
        length = len(part) * VAL_SIZE
        elements = bytearray(_U8_TEMPLATE[:length])
        elements[_PAYLOAD::VAL_SIZE] = part
        start = data + first * VAL_SIZE
        _MEM[start : start + length] = elements


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
    _capi.byte_vec_new(addr + _PAYLOAD, len(encoded), encoded)
    _U64.pack_into(_MEM, addr + _PAYLOAD + 16, payload)


def put_enum(addr: int, case: str) -> None:
    """Write an enum value (its case name)."""
    encoded = case.encode("ascii")
    _MEM[addr] = ENUM
    _capi.byte_vec_new(addr + _PAYLOAD, len(encoded), encoded)


def put_list(addr: int, fills: Sequence[Filler]) -> None:
    """Write a `list<T>` whose elements are written by `fills`."""
    _MEM[addr] = LIST
    _capi.vallist_new_uninit(addr + _PAYLOAD, len(fills))
    data = _u64(addr + _PAYLOAD + 8)
    for i, fill in enumerate(fills):
        fill(data + i * VAL_SIZE)


def put_tuple(addr: int, fills: Sequence[Filler]) -> None:
    """Write a `tuple<...>` whose fields are written by `fills`."""
    _MEM[addr] = TUPLE
    _capi.valtuple_new_uninit(addr + _PAYLOAD, len(fills))
    data = _u64(addr + _PAYLOAD + 8)
    for i, fill in enumerate(fills):
        fill(data + i * VAL_SIZE)


def put_record(addr: int, fields: Sequence[tuple[str, Filler]]) -> None:
    """Write a record; `fields` gives each field's name and filler in WIT order."""
    _MEM[addr] = RECORD
    _capi.valrecord_new_uninit(addr + _PAYLOAD, len(fields))
    data = _u64(addr + _PAYLOAD + 8)
    for i, (name, fill) in enumerate(fields):
        entry = data + i * _RECORD_ENTRY
        encoded = name.encode("ascii")
        _capi.byte_vec_new(entry, len(encoded), encoded)
        fill(entry + _ENTRY_VAL)


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
    _capi.valtuple_new_uninit(addr + _PAYLOAD, 2)
    fields = _u64(addr + _PAYLOAD + 8)
    put_string(fields, pair[0])
    put_string(fields + VAL_SIZE, pair[1])


def put_ok_unit(results: int) -> None:
    """Write `ok(_)`."""
    _KIND_RESULT.pack_into(_MEM, results, RESULT, True, 0)


_TRUE = _KIND_U64.pack(BOOL, 1)
_FALSE = _KIND_U64.pack(BOOL, 0)


def put_ok_bool(results: int, value: bool) -> None:
    """Write `ok(bool)`."""
    _KIND_RESULT.pack_into(_MEM, results, RESULT, True, _boxed_packed(_TRUE if value else _FALSE))


def put_ok_s64(results: int, value: int) -> None:
    """Write `ok(s64)`."""
    payload = _boxed_packed(_KIND_Q64.pack(S64, value))
    _KIND_RESULT.pack_into(_MEM, results, RESULT, True, payload)


def put_ok_u64(results: int, value: int) -> None:
    """Write `ok(u64)` (raises `struct.error` when out of range)."""
    payload = _boxed_packed(_KIND_U64.pack(U64, value))
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


def put_ok_present_pairs(results: int, items: Sequence[tuple[str, bytes] | None]) -> None:
    """Write `ok(list<option<tuple<string, list<u8>>>>)` (upstream's batch.get-many)."""
    slot = _scratch.slot_addr
    _MEM[slot] = LIST
    _capi.vallist_new_uninit(slot + _PAYLOAD, len(items))
    data = _u64(slot + _PAYLOAD + 8)
    for i, item in enumerate(items):
        entry = data + i * VAL_SIZE
        if item is None:
            _KIND_U64.pack_into(_MEM, entry, OPTION, 0)
            continue
        # Build the tuple in the entry's own slot, move it into a box, then
        # write the option over the emptied slot.
        _MEM[entry] = TUPLE
        _capi.valtuple_new_uninit(entry + _PAYLOAD, 2)
        fields = _u64(entry + _PAYLOAD + 8)
        put_string(fields, item[0])
        put_bytes(fields + VAL_SIZE, item[1])
        _KIND_U64.pack_into(_MEM, entry, OPTION, _capi.val_new(entry))
    _KIND_RESULT.pack_into(_MEM, results, RESULT, True, _capi.val_new(slot))


def put_ok_key_values(results: int, pairs: Sequence[tuple[str, bytes | None]]) -> None:
    """Write `ok(list<tuple<string, option<list<u8>>>>)` (Spin's batch.get-many)."""
    slot = _scratch.slot_addr
    _MEM[slot] = LIST
    _capi.vallist_new_uninit(slot + _PAYLOAD, len(pairs))
    data = _u64(slot + _PAYLOAD + 8)
    for i, (key, value) in enumerate(pairs):
        entry = data + i * VAL_SIZE
        _MEM[entry] = TUPLE
        _capi.valtuple_new_uninit(entry + _PAYLOAD, 2)
        fields = _u64(entry + _PAYLOAD + 8)
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
