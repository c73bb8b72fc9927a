"""WIT value and function types, as wasikv declares them and as components import them.

Host functions declare their signatures with these types (see
`host_functions`); a component's imports, read from wasmtime's type
reflection, are converted to the same types, so checking a component against
what wasikv implements is an equality test, and a mismatch can be shown as
WIT-like text on both sides.

Records and variants compare by structure (field and case names and types),
as the component model does; their WIT names are only for display. Resources
compare by name within one interface.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wasmtime.component import _types as wt
from wasmtime.component._resource_type import ResourceType


class WitType:
    """A WIT value type."""

    def render(self, short: bool = False) -> str:
        """WIT-like text for messages (`result<option<list<u8>>, error>`).

        With `short`, named records and variants are shown by name only.
        """
        raise NotImplementedError

    def named(self) -> dict[str, WitType]:
        """The named records and variants inside this type, by name."""
        found: dict[str, WitType] = {}
        for child in self.children():
            found.update(child.named())
        return found

    def children(self) -> tuple[WitType, ...]:
        """The types this one is built from."""
        return ()


@dataclass(frozen=True)
class Prim(WitType):
    """A primitive: `bool`, `u8` ... `s64`, `f32`, `f64`, `char`, `string`."""

    name: str

    def render(self, short: bool = False) -> str:
        return self.name


BOOL = Prim("bool")
U8 = Prim("u8")
U16 = Prim("u16")
U32 = Prim("u32")
U64 = Prim("u64")
S8 = Prim("s8")
S16 = Prim("s16")
S32 = Prim("s32")
S64 = Prim("s64")
F32 = Prim("f32")
F64 = Prim("f64")
CHAR = Prim("char")
STRING = Prim("string")


@dataclass(frozen=True)
class ListOf(WitType):
    """`list<T>`."""

    element: WitType

    def render(self, short: bool = False) -> str:
        return f"list<{self.element.render(short)}>"

    def children(self) -> tuple[WitType, ...]:
        return (self.element,)


@dataclass(frozen=True)
class OptionOf(WitType):
    """`option<T>`."""

    inner: WitType

    def render(self, short: bool = False) -> str:
        return f"option<{self.inner.render(short)}>"

    def children(self) -> tuple[WitType, ...]:
        return (self.inner,)


@dataclass(frozen=True)
class ResultOf(WitType):
    """`result<T, E>`; None for an absent payload (`_`)."""

    ok: WitType | None
    err: WitType | None

    def render(self, short: bool = False) -> str:
        if self.ok is None and self.err is None:
            return "result"
        ok = "_" if self.ok is None else self.ok.render(short)
        return f"result<{ok}>" if self.err is None else f"result<{ok}, {self.err.render(short)}>"

    def children(self) -> tuple[WitType, ...]:
        return tuple(t for t in (self.ok, self.err) if t is not None)


@dataclass(frozen=True)
class TupleOf(WitType):
    """`tuple<A, B, ...>`."""

    items: tuple[WitType, ...]

    def render(self, short: bool = False) -> str:
        return f"tuple<{', '.join(item.render(short) for item in self.items)}>"

    def children(self) -> tuple[WitType, ...]:
        return self.items


@dataclass(frozen=True)
class RecordOf(WitType):
    """A record: named fields in order."""

    fields: tuple[tuple[str, WitType], ...]
    name: str | None = field(default=None, compare=False)

    def render(self, short: bool = False) -> str:
        if short and self.name:
            return self.name
        body = ", ".join(f"{name}: {ty.render(short)}" for name, ty in self.fields)
        return f"{self.name or 'record'} {{ {body} }}"

    def children(self) -> tuple[WitType, ...]:
        return tuple(ty for _, ty in self.fields)

    def named(self) -> dict[str, WitType]:
        found = super().named()
        if self.name:
            found[self.name] = self
        return found


@dataclass(frozen=True)
class VariantOf(WitType):
    """A variant: named cases in order, each with an optional payload."""

    cases: tuple[tuple[str, WitType | None], ...]
    name: str | None = field(default=None, compare=False)

    def render(self, short: bool = False) -> str:
        if short and self.name:
            return self.name
        body = ", ".join(name if ty is None else f"{name}({ty.render(short)})" for name, ty in self.cases)
        return f"{self.name or 'variant'} {{ {body} }}"

    def children(self) -> tuple[WitType, ...]:
        return tuple(ty for _, ty in self.cases if ty is not None)

    def named(self) -> dict[str, WitType]:
        found = super().named()
        if self.name:
            found[self.name] = self
        return found


@dataclass(frozen=True)
class EnumOf(WitType):
    """An enum (only for reading foreign types; wasikv declares none)."""

    names: tuple[str, ...]

    def render(self, short: bool = False) -> str:
        return f"enum {{ {', '.join(self.names)} }}"


@dataclass(frozen=True)
class FlagsOf(WitType):
    """A flags type (only for reading foreign types)."""

    names: tuple[str, ...]

    def render(self, short: bool = False) -> str:
        return f"flags {{ {', '.join(self.names)} }}"


@dataclass(frozen=True)
class Own(WitType):
    """`own<R>` (written `R` in WIT) of the resource named `resource`."""

    resource: str

    def render(self, short: bool = False) -> str:
        return self.resource


@dataclass(frozen=True)
class Borrow(WitType):
    """`borrow<R>` of the resource named `resource`."""

    resource: str

    def render(self, short: bool = False) -> str:
        return f"borrow<{self.resource}>"


@dataclass(frozen=True)
class Unsupported(WitType):
    """A type wasikv never declares (futures, streams, ...): never equal to a declared one."""

    description: str

    def render(self, short: bool = False) -> str:
        return self.description


@dataclass(frozen=True)
class FuncSig:
    """A function type: parameters (name, type) and an optional result.

    Two signatures are equal when their parameter and result types are;
    parameter names are shown, not compared (nor does wasmtime compare them).
    """

    params: tuple[tuple[str, WitType], ...]
    result: WitType | None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FuncSig):
            return NotImplemented
        return self.result == other.result and [t for _, t in self.params] == [t for _, t in other.params]

    def __hash__(self) -> int:
        return hash((tuple(t for _, t in self.params), self.result))

    def render(self, short: bool = False) -> str:
        params = ", ".join(f"{name}: {ty.render(short)}" for name, ty in self.params)
        return f"func({params})" + ("" if self.result is None else f" -> {self.result.render(short)}")

    def named(self) -> dict[str, WitType]:
        """The named records and variants in the parameters and result."""
        found: dict[str, WitType] = {}
        for ty in [*(t for _, t in self.params), *([self.result] if self.result is not None else [])]:
            found.update(ty.named())
        return found


def describe_mismatch(wanted: FuncSig, have: FuncSig) -> str:
    """`component expects ..., wasikv implements ...`, naming the records and variants that differ."""
    text = f"component expects {wanted.render(short=True)}, wasikv implements {have.render(short=True)}"
    theirs, ours = wanted.named(), have.named()
    differing = [name for name in theirs if name in ours and theirs[name] != ours[name]]
    if differing:
        details = "; ".join(
            f"the component's {name} is {theirs[name].render()}, wasikv's is {ours[name].render()}"
            for name in differing
        )
        text += f" ({details})"
    return text


# ------------------------------------------------- a component's own types


@dataclass
class TypeNames:
    """Names for the resource and compound types of one component instance type."""

    resources: list[tuple[ResourceType, str]] = field(default_factory=list)
    compounds: list[tuple[Any, str]] = field(default_factory=list)

    def resource(self, ty: ResourceType) -> str:
        for known, name in self.resources:
            if known == ty:
                return name
        return "resource"

    def compound(self, ty: Any) -> str | None:
        for known, name in self.compounds:
            if type(known) is type(ty) and known == ty:
                return name
        return None


_PRIMS: Mapping[type, Prim] = {
    wt.Bool: BOOL,
    wt.U8: U8,
    wt.U16: U16,
    wt.U32: U32,
    wt.U64: U64,
    wt.S8: S8,
    wt.S16: S16,
    wt.S32: S32,
    wt.S64: S64,
    wt.F32: F32,
    wt.F64: F64,
    wt.Char: CHAR,
    wt.String: STRING,
}


def from_wasmtime(ty: Any, names: TypeNames) -> WitType:
    """Convert a wasmtime-py component value type to a `WitType`."""
    prim = _PRIMS.get(type(ty))
    if prim is not None:
        return prim
    if isinstance(ty, wt.ListType):
        return ListOf(from_wasmtime(ty.element, names))
    if isinstance(ty, wt.OptionType):
        return OptionOf(from_wasmtime(ty.payload, names))
    if isinstance(ty, wt.ResultType):
        ok, err = ty.ok, ty.err
        return ResultOf(
            None if ok is None else from_wasmtime(ok, names),
            None if err is None else from_wasmtime(err, names),
        )
    if isinstance(ty, wt.TupleType):
        return TupleOf(tuple(from_wasmtime(item, names) for item in ty.elements))
    if isinstance(ty, wt.RecordType):
        return RecordOf(
            tuple((name, from_wasmtime(field_ty, names)) for name, field_ty in ty.fields),
            name=names.compound(ty),
        )
    if isinstance(ty, wt.VariantType):
        return VariantOf(
            tuple((name, None if case is None else from_wasmtime(case, names)) for name, case in ty.cases),
            name=names.compound(ty),
        )
    if isinstance(ty, wt.EnumType):
        return EnumOf(tuple(ty.names))
    if isinstance(ty, wt.FlagsType):
        return FlagsOf(tuple(ty.names))
    if isinstance(ty, wt.OwnType):
        return Own(names.resource(ty.ty))
    if isinstance(ty, wt.BorrowType):
        return Borrow(names.resource(ty.ty))
    return Unsupported(type(ty).__name__)


def func_from_wasmtime(ty: wt.FuncType, names: TypeNames) -> FuncSig:
    """Convert a wasmtime-py component function type to a `FuncSig`."""
    result = ty.result
    return FuncSig(
        tuple((name, from_wasmtime(param, names)) for name, param in ty.params),
        None if result is None else from_wasmtime(result, names),
    )


def instance_names(items: Mapping[str, Any], more: Sequence[tuple[str, Any]] = ()) -> TypeNames:
    """The named resources and compound types exported by a component instance type."""
    names = TypeNames()
    for name, ty in [*items.items(), *more]:
        if isinstance(ty, ResourceType):
            names.resources.append((ty, name))
        elif isinstance(ty, (wt.RecordType, wt.VariantType)):
            names.compounds.append((ty, name))
    return names


__all__ = [
    "BOOL",
    "CHAR",
    "F32",
    "F64",
    "S8",
    "S16",
    "S32",
    "S64",
    "STRING",
    "U8",
    "U16",
    "U32",
    "U64",
    "Borrow",
    "EnumOf",
    "FlagsOf",
    "FuncSig",
    "ListOf",
    "OptionOf",
    "Own",
    "Prim",
    "RecordOf",
    "ResultOf",
    "TupleOf",
    "TypeNames",
    "Unsupported",
    "VariantOf",
    "WitType",
    "describe_mismatch",
    "from_wasmtime",
    "func_from_wasmtime",
    "instance_names",
]
