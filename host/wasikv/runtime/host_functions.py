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
`KeyValueSession` for wasi:keyvalue, the component's variables for
wasi:config) by the address of the wasmtime store context the call runs in,
in the table of the capability that defines them (`wasikv.capability`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wasmtime.component import Linker

from . import _canonical as cv
from . import _capi
from .codec import Ok, Writer, plain_reader, reader, writer
from .wit_types import (
    BOOL,
    S64,
    STRING,
    U8,
    U64,
    FuncSig,
    ListOf,
    OptionOf,
    ResultOf,
    TupleOf,
    WitType,
)

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
    #: The variants of its WIT this implementation belongs to, when several
    #: share the name: a component must get all its interfaces of a package
    #: from one shape (see `linking`).
    shapes: frozenset[str] = frozenset()
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
    """The raw callback of a declared function: read, convert, call, write.

    The callback runs on every guest call, so it is generated as straight-line
    Python for this declaration (as `dataclasses` generates `__init__`): one
    read and one conversion per parameter, the body, one write, and no loops,
    lists or wrappers in between.
    """
    name = function.name
    result = function.result
    errors = function.errors
    if errors is not None and (not isinstance(result, ResultOf) or result.err is None):
        raise TypeError(f"{name}: `errors` needs a result<T, E> result")
    scope: dict[str, Any] = {
        "contexts": contexts,
        "body": function.body,
        "CodecError": cv.CodecError,
        "GuestFault": _capi.GuestFault,
        "prefix": f"{name}: ",
    }
    reads, args = [], []
    for i, param in enumerate(function.params):
        plain = plain_reader(param.type)
        if plain is not None:
            scope[f"read{i}"] = plain
            reads.append(f"        a{i} = read{i}(args + {i * cv.VAL_SIZE})")
        else:
            scope[f"read{i}"] = reader(param.type)
            reads.append(f"        a{i} = read{i}(ctx, args + {i * cv.VAL_SIZE})")
        if param.convert is None:
            args.append(f"a{i}")
        else:
            scope[f"convert{i}"] = param.convert
            args.append(f"convert{i}(context, a{i})")
    lines = [
        "def call(ctx, args, results):",
        "    context = contexts[ctx]",
        "    try:",
        # Every argument is read before any conversion can fail, so each
        # borrowed handle is released exactly once.
        *(reads or ["        pass"]),
        "    except CodecError as exc:",
        "        raise GuestFault(prefix + str(exc)) from None",
    ]
    call_body = f"value = body(context{''.join(', ' + a for a in args)})"
    if errors is not None:
        assert isinstance(result, ResultOf) and result.err is not None
        scope["write_err"] = _err_writer(result.err, errors, type_ids)
        lines += [
            "    try:",
            f"        {call_body}",
            "    except Exception as exc:",
            "        write_err(ctx, results, exc)",
            "        return",
        ]
    else:
        lines.append(f"    {call_body}")
    fast_ok = _FAST_OK.get(result.ok) if isinstance(result, ResultOf) else None
    if fast_ok is not None:
        scope["write_ok"] = fast_ok
        lines.append("    write_ok(results, value)")
    elif result is not None:
        write = writer(result, type_ids)
        scope["write_ok"] = write
        scope["Ok"] = Ok
        lines.append(
            "    write_ok(ctx, results, Ok(value))"
            if isinstance(result, ResultOf)
            else "    write_ok(ctx, results, value)"
        )
    # The source is built above from the declaration alone, never from input.
    exec("\n".join(lines), scope)
    call: _capi.HostFunc = scope["call"]
    return call


def _err_writer(err: WitType, errors: Callable[[Exception], Any], type_ids: Mapping[str, int]) -> Writer:
    write = writer(err, type_ids)

    def write_err(ctx: int, addr: int, exc: Exception) -> None:
        cv.put_result(addr, False, lambda inner: write(ctx, inner, errors(exc)))

    return write_err


# `ok(T)` of the results every key-value call returns, written in one step:
# (results address, value).
_FAST_OK: dict[WitType | None, Callable[[int, Any], None]] = {
    None: lambda addr, _value: cv.put_ok_unit(addr),
    BOOL: cv.put_ok_bool,
    S64: cv.put_ok_s64,
    U64: cv.put_ok_u64,
    OptionOf(ListOf(U8)): cv.put_ok_option_bytes,
    ListOf(TupleOf((STRING, OptionOf(ListOf(U8))))): cv.put_ok_key_values,
    ListOf(OptionOf(TupleOf((STRING, ListOf(U8))))): cv.put_ok_present_pairs,
}


__all__ = ["Convert", "HostFunction", "HostInterface", "HostResource", "Param"]
