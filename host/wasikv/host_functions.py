"""Host functions declared by their WIT signature, and defined on a component linker.

An interface wasikv implements is a `HostInterface`: its resources and its
functions, each a `HostFunction` with a name, typed parameters, a result
type and a short body. Everything else follows from the declaration:

- arguments are read by readers built for their declared types (`codec`),
  each value's kind checked, then converted (a bucket handle to its open
  bucket, a key checked against the limits) before the body sees them;
- a `result<T, E>` result is written as `ok(body's return value)`, or, when
  the body raises, as `err(errors(exception))`: errors are mapped in one place
  per interface, never in the bodies;
- the signature (`HostFunction.signature`) is what typed linking compares
  with a component's imports before it is instantiated (`linking`).

Host functions find their per-instance state (`contexts[ctx]`, a
`KeyValueSession` for wasi:keyvalue) by the address of the wasmtime store
context the call runs in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wasmtime.component import Linker

from . import _canonical as cv
from . import _capi
from .codec import Ok, Writer, reader, writer
from .wit_types import BOOL, S64, STRING, U8, FuncSig, ListOf, OptionOf, ResultOf, TupleOf, WitType

#: Converts a value read from the guest before the body sees it: (context, value) -> value.
Convert = Callable[[Any, Any], Any]


@dataclass(frozen=True)
class Param:
    """A parameter: its name, its WIT type and an optional conversion."""

    name: str
    type: WitType
    convert: Convert | None = None


@dataclass(frozen=True)
class HostResource:
    """A resource type the host implements; `drop(context, rep)` releases one handle."""

    name: str
    type_id: int
    drop: Callable[[Any, int], None]


@dataclass(frozen=True)
class HostFunction:
    """One function of a host interface.

    `body(context, *args)` returns the result value. For a `result<T, E>`
    result, an exception from a conversion or the body becomes
    `err(errors(exception))` when `errors` is given.
    """

    name: str
    params: tuple[Param, ...]
    result: WitType | None
    body: Callable[..., Any]
    errors: Callable[[Exception], Any] | None = None

    @property
    def signature(self) -> FuncSig:
        """The WIT function type, as typed linking compares it."""
        return FuncSig(tuple((p.name, p.type) for p in self.params), self.result)


@dataclass(frozen=True, eq=False)
class HostInterface:
    """A WIT interface the host implements: resources and functions, under one name."""

    name: str
    functions: tuple[HostFunction, ...]
    resources: tuple[HostResource, ...] = ()
    #: Which variant of a WIT this is, when several share the name (for messages).
    shape: str = ""
    _by_name: dict[str, HostFunction] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {f.name: f for f in self.functions})

    def function(self, name: str) -> HostFunction | None:
        """The function called `name`, if this interface has it."""
        return self._by_name.get(name)

    def define(self, linker: Linker, contexts: Mapping[int, Any]) -> None:
        """Define this interface's resources and functions in `linker`."""
        type_ids = {r.name: r.type_id for r in self.resources}
        with linker.root() as root, root.add_instance(self.name) as instance:
            for resource in self.resources:
                _capi.define_resource(instance, resource.name, resource.type_id, _dropper(resource, contexts))
            for function in self.functions:
                _capi.define_func(instance, function.name, _dispatcher(function, contexts, type_ids))


def _dropper(resource: HostResource, contexts: Mapping[int, Any]) -> _capi.HostDtor:
    drop = resource.drop

    def dtor(ctx: int, rep: int) -> None:
        context = contexts.get(ctx)
        if context is not None:  # the instance may already be gone
            drop(context, rep)

    return dtor


def _dispatcher(
    function: HostFunction, contexts: Mapping[int, Any], type_ids: Mapping[str, int]
) -> _capi.HostFunc:
    """The raw callback of a declared function: read, convert, call, write."""
    name = function.name
    body = function.body
    slots = [(i * cv.VAL_SIZE, reader(p.type)) for i, p in enumerate(function.params)]
    converts = [(i, p.convert) for i, p in enumerate(function.params) if p.convert is not None]
    result = function.result
    errors = function.errors
    write_ok = _ok_writer(result, type_ids)
    write_err: Writer | None = None
    if errors is not None:
        if not isinstance(result, ResultOf) or result.err is None:
            raise TypeError(f"{name}: `errors` needs a result<T, E> result")
        err_writer = writer(result.err, type_ids)

        def write_err(ctx: int, addr: int, exc: Any) -> None:
            cv.put_result(addr, False, lambda inner: err_writer(ctx, inner, errors(exc)))

    def call(ctx: int, args: int, results: int) -> None:
        context = contexts[ctx]
        try:
            # Every argument is read before any conversion can fail, so each
            # borrowed handle is released exactly once.
            values = [read(ctx, args + offset) for offset, read in slots]
        except cv.CodecError as exc:
            raise _capi.GuestFault(f"{name}: {exc}") from None
        try:
            for index, convert in converts:
                values[index] = convert(context, values[index])
            value = body(context, *values)
        except Exception as exc:
            if write_err is None:
                raise
            write_err(ctx, results, exc)
            return
        if write_ok is not None:
            write_ok(ctx, results, value)

    return call


# `ok(T)` of the results every key-value call returns, written without
# building intermediate fillers.
_FAST_OK: dict[WitType | None, Callable[[int, Any], None]] = {
    None: lambda addr, _value: cv.put_ok_unit(addr),
    BOOL: cv.put_ok_bool,
    S64: cv.put_ok_s64,
    OptionOf(ListOf(U8)): cv.put_ok_option_bytes,
    ListOf(TupleOf((STRING, OptionOf(ListOf(U8))))): cv.put_ok_key_values,
}


def _ok_writer(result: WitType | None, type_ids: Mapping[str, int]) -> Writer | None:
    if result is None:
        return None
    if isinstance(result, ResultOf) and result.ok in _FAST_OK:
        fast = _FAST_OK[result.ok]
        return lambda _ctx, addr, value: fast(addr, value)
    write = writer(result, type_ids)
    if isinstance(result, ResultOf):
        return lambda ctx, addr, value: write(ctx, addr, Ok(value))
    return write


__all__ = ["Convert", "HostFunction", "HostInterface", "HostResource", "Param"]
