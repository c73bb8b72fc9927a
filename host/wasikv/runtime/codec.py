"""Readers and writers of component values, built once per WIT type.

`reader(ty)` returns a function `(ctx, addr) -> value` and `writer(ty)` one
`(ctx, addr, value) -> None`, composed from the kind-checked primitives of
`_canonical`. Types that wasikv moves on every call (strings, `list<u8>`,
`option<string>`, key lists, key/value pairs) get the hand-tuned primitives;
everything else is composed generically, so any declared type can be read
and written.

Python values: integers, bools and strings as themselves; `list<u8>` as
`bytes`; other lists as lists; `option<T>` as None or the value; tuples as
tuples; records as tuples in field order (written from a tuple or a mapping,
read as a dict); variants as `Case`; results as `Ok`/`Err`; resources as
their rep (an int), and `own<R>` results need the resource's host type id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from . import _canonical as cv
from .wit_types import (
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
    Borrow,
    EnumOf,
    ListOf,
    OptionOf,
    Own,
    RecordOf,
    ResultOf,
    TupleOf,
    VariantOf,
    WitType,
)

Reader = Callable[[int, int], Any]
Writer = Callable[[int, int, Any], None]


class Case(NamedTuple):
    """A variant value: the case name and its payload (None without one)."""

    name: str
    payload: Any = None


class Ok(NamedTuple):
    """The `ok` side of a result value."""

    value: Any = None


class Err(NamedTuple):
    """The `err` side of a result value."""

    value: Any = None


_PRIM_KINDS = {BOOL: cv.BOOL, U8: cv.U8, S8: cv.S8, U16: cv.U16, S16: cv.S16, U32: cv.U32}
_PRIM_KINDS.update({S32: cv.S32, U64: cv.U64, S64: cv.S64})

_BYTES = ListOf(U8)
_STRINGS = ListOf(STRING)
_STRING_PAIRS = ListOf(TupleOf((STRING, STRING)))
_STRING_BYTES_PAIRS = ListOf(TupleOf((STRING, _BYTES)))


def plain_reader(ty: WitType) -> Callable[[int], Any] | None:
    """A reader of `ty` that needs no store context, `addr -> value`, when there is a fast one."""
    kind_code = _PRIM_KINDS.get(ty)  # type: ignore[call-overload]
    if kind_code is not None:
        return cv.prim_reader(kind_code)
    return _FAST_READERS.get(ty)


#: Reads a resource handle from the guest as the host's value: (ctx, address, its type) -> value.
ResourceIn = Callable[[int, int, "Own | Borrow"], Any]
#: Turns a host value into the rep of a new `own<R>` handle: (ctx, value) -> rep.
ResourceOut = Callable[[int, Any], int]


def reader(ty: WitType, resource: ResourceIn | None = None) -> Reader:
    """A function reading a value of type `ty`: `(ctx, addr) -> value`.

    Resource handles are read as their rep, or by `resource`.
    """
    plain = plain_reader(ty)
    if plain is not None:
        return lambda _ctx, addr: plain(addr)
    if isinstance(ty, (Own, Borrow)):
        if resource is None:
            return cv.read_resource_rep
        handle = ty
        return lambda ctx, addr: resource(ctx, addr, handle)
    if isinstance(ty, EnumOf):
        known = frozenset(ty.names)

        def read_enum(_ctx: int, addr: int) -> str:
            name = cv.read_enum(addr)
            if name not in known:
                raise cv.CodecError(f"value kind mismatch: unknown enum case {name!r}")
            return name

        return read_enum
    if isinstance(ty, ListOf):
        element = reader(ty.element, resource)
        return lambda ctx, addr: [element(ctx, item) for item in cv.list_items(addr)]
    if isinstance(ty, OptionOf):
        inner = reader(ty.inner, resource)

        def read_option(ctx: int, addr: int) -> Any:
            payload = cv.option_payload(addr)
            return None if payload == 0 else inner(ctx, payload)

        return read_option
    if isinstance(ty, TupleOf):
        items = [reader(item, resource) for item in ty.items]
        count = len(items)
        return lambda ctx, addr: tuple(
            read(ctx, item) for read, item in zip(items, cv.tuple_items(addr, count), strict=True)
        )
    if isinstance(ty, RecordOf):
        names = [name for name, _ in ty.fields]
        fields = [reader(field, resource) for _, field in ty.fields]
        return lambda ctx, addr: {
            name: read(ctx, item)
            for name, read, item in zip(names, fields, cv.record_fields(addr, names), strict=True)
        }
    if isinstance(ty, VariantOf):
        cases = {name: None if case is None else reader(case, resource) for name, case in ty.cases}
        return lambda ctx, addr: _read_case(ctx, addr, cases)
    if isinstance(ty, ResultOf):
        ok = None if ty.ok is None else reader(ty.ok, resource)
        err = None if ty.err is None else reader(ty.err, resource)
        return lambda ctx, addr: _read_result(ctx, addr, ok, err)
    raise TypeError(f"wasikv cannot read values of type {ty.render()}")


def _read_case(ctx: int, addr: int, cases: Mapping[str, Reader | None]) -> Case:
    name, payload = cv.variant_parts(addr)
    if name not in cases:
        raise cv.CodecError(f"value kind mismatch: unknown variant case {name!r}")
    read = cases[name]
    if (read is None) != (payload == 0):
        raise cv.CodecError(f"value kind mismatch: variant case {name!r} payload")
    return Case(name, None if read is None else read(ctx, payload))


def _read_result(ctx: int, addr: int, ok: Reader | None, err: Reader | None) -> Ok | Err:
    is_ok, payload = cv.result_parts(addr)
    read = ok if is_ok else err
    if (read is None) != (payload == 0):
        raise cv.CodecError("value kind mismatch: result payload")
    value = None if read is None else read(ctx, payload)
    return Ok(value) if is_ok else Err(value)


_FAST_READERS: dict[WitType, Callable[[int], Any]] = {
    STRING: cv.read_string,
    _BYTES: cv.read_bytes,
    _STRINGS: cv.read_strings,
    OptionOf(STRING): cv.read_option_string,
    _STRING_PAIRS: cv.read_string_pairs,
    _STRING_BYTES_PAIRS: cv.read_string_bytes_pairs,
}


def writer(
    ty: WitType, resources: Mapping[str, int] | None = None, resource: ResourceOut | None = None
) -> Writer:
    """A function writing a value of type `ty`: `(ctx, addr, value)`.

    `resources` maps resource names to host type ids, for `own<R>` values:
    their rep, or whatever `resource` turns into a rep.
    """
    resources = resources or {}
    kind_code = _PRIM_KINDS.get(ty)  # type: ignore[call-overload]
    if kind_code is not None:
        write_prim = cv.prim_writer(kind_code)
        return lambda _ctx, addr, value: write_prim(addr, value)
    if ty == STRING:
        return lambda _ctx, addr, value: cv.put_string(addr, value)
    if ty == _BYTES:
        return lambda _ctx, addr, value: cv.put_bytes(addr, value)
    if isinstance(ty, Own):
        if ty.resource not in resources:
            raise TypeError(f"no host type id for resource {ty.resource!r}")
        type_id = resources[ty.resource]
        if resource is not None:
            make = resource
            return lambda ctx, addr, value: cv.put_own_resource(ctx, addr, make(ctx, value), type_id)
        return lambda ctx, addr, rep: cv.put_own_resource(ctx, addr, rep, type_id)
    if isinstance(ty, EnumOf):
        names = frozenset(ty.names)

        def write_enum(_ctx: int, addr: int, value: str) -> None:
            if value not in names:
                raise TypeError(f"unknown enum case {value!r}")
            cv.put_enum(addr, value)

        return write_enum
    if isinstance(ty, ListOf):
        element = writer(ty.element, resources, resource)
        return lambda ctx, addr, values: cv.put_list(addr, [_bind(element, ctx, value) for value in values])
    if isinstance(ty, OptionOf):
        inner = writer(ty.inner, resources, resource)
        return lambda ctx, addr, value: cv.put_option(
            addr, None if value is None else _bind(inner, ctx, value)
        )
    if isinstance(ty, TupleOf):
        items = [writer(item, resources, resource) for item in ty.items]
        return lambda ctx, addr, values: cv.put_tuple(
            addr, [_bind(write, ctx, value) for write, value in zip(items, values, strict=True)]
        )
    if isinstance(ty, RecordOf):
        fields = [(name, writer(field, resources, resource)) for name, field in ty.fields]

        def write_record(ctx: int, addr: int, value: Any) -> None:
            values = [value[name] for name, _ in fields] if isinstance(value, Mapping) else value
            cv.put_record(
                addr,
                [(name, _bind(write, ctx, v)) for (name, write), v in zip(fields, values, strict=True)],
            )

        return write_record
    if isinstance(ty, VariantOf):
        cases = {name: None if case is None else writer(case, resources, resource) for name, case in ty.cases}
        return lambda ctx, addr, value: _write_case(ctx, addr, value, cases)
    if isinstance(ty, ResultOf):
        ok = None if ty.ok is None else writer(ty.ok, resources, resource)
        err = None if ty.err is None else writer(ty.err, resources, resource)

        def write_result(ctx: int, addr: int, value: Ok | Err) -> None:
            write = ok if isinstance(value, Ok) else err
            payload = None if write is None else _bind(write, ctx, value.value)
            cv.put_result(addr, isinstance(value, Ok), payload)

        return write_result
    raise TypeError(f"wasikv cannot write values of type {ty.render()}")


def _bind(write: Writer, ctx: int, value: Any) -> cv.Filler:
    return lambda addr: write(ctx, addr, value)


def _write_case(ctx: int, addr: int, value: Case | str, cases: Mapping[str, Writer | None]) -> None:
    case = Case(value) if isinstance(value, str) else value
    if case.name not in cases:
        raise TypeError(f"unknown variant case {case.name!r}")
    write = cases[case.name]
    cv.put_variant(addr, case.name, None if write is None else _bind(write, ctx, case.payload))


__all__ = [
    "Case",
    "Err",
    "Ok",
    "Reader",
    "ResourceIn",
    "ResourceOut",
    "Writer",
    "plain_reader",
    "reader",
    "writer",
]
