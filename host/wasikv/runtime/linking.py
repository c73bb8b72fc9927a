"""Typed linking: a component's imports checked against what wasikv implements.

wasmtime checks the types of WASI imports itself, but host functions defined
through the component C API are untyped: a component built against another
WIT under the same interface name would instantiate and then read values of
the wrong kind. So before a component is instantiated, every import that
names an interface wasikv implements is compared, function by function,
with wasikv's declared signatures (`HostInterface`). Several implementations
may share an interface name (shapes of one WIT); the component gets the one
whose signatures match all the functions it imports, and a component that
matches none is refused with one error naming the import, the function, the
type the component wants and the one wasikv has.

Exports are checked the same way before a trigger calls them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wasmtime import Engine
from wasmtime.component import Component
from wasmtime.component import _types as wt

from ..errors import ComponentError
from .host_functions import HostInterface
from .wit_types import (
    FuncSig,
    describe_mismatch,
    func_from_wasmtime,
    instance_names,
)

#: Interface-name prefixes wasikv owns: an import under one that wasikv does
#: not implement is refused here with a clear message instead of wasmtime's.
OWNED_PACKAGES = ("wasi:keyvalue/", "wasi:config/")


@dataclass(frozen=True)
class LinkPlan:
    """The implementation chosen for each wasikv interface a component imports."""

    interfaces: tuple[HostInterface, ...]
    #: The shapes (WIT variants) the chosen implementations share; empty when
    #: the component imports none that has shapes.
    shapes: frozenset[str] = frozenset()
    #: The names of every interface it imports.
    imports: tuple[str, ...] = ()
    #: What capabilities worked out from the component itself, by capability name
    #: (see `Capability.prepare`).
    extras: tuple[tuple[str, Any], ...] = ()

    def extra(self, name: str) -> Any:
        """What the capability called `name` prepared for this component (None: nothing)."""
        for key, value in self.extras:
            if key == name:
                return value
        return None


@dataclass(frozen=True)
class ImportMatch:
    """How one import of a component meets what wasikv implements."""

    name: str
    functions: Mapping[str, FuncSig]
    #: The implementations whose signatures match every function it imports.
    matches: tuple[HostInterface, ...]
    #: Why none matches: one line per function (empty when one does).
    problems: tuple[str, ...]

    @property
    def ours(self) -> bool:
        """Whether wasikv implements (or owns) this interface name."""
        return bool(self.matches or self.problems)


def imported_functions(engine: Engine, component: Component) -> dict[str, dict[str, FuncSig]]:
    """The functions of every instance a component imports: {interface: {function: signature}}."""
    return _functions(engine, component.type.imports(engine))


def exported_functions(engine: Engine, component: Component) -> dict[str, dict[str, FuncSig]]:
    """The functions of every instance a component exports: {interface: {function: signature}}."""
    return _functions(engine, component.type.exports(engine))


def _functions(engine: Engine, items: Mapping[str, Any]) -> dict[str, dict[str, FuncSig]]:
    found: dict[str, dict[str, FuncSig]] = {}
    for name, extern in items.items():
        ty = extern.ty
        if not isinstance(ty, wt.ComponentInstanceType):
            continue
        members = {member: item.ty for member, item in ty.exports(engine).items()}
        names = instance_names(members)
        found[name] = {
            member: func_from_wasmtime(item, names)
            for member, item in members.items()
            if isinstance(item, wt.FuncType)
        }
    return found


def match_imports(
    imports: Mapping[str, Mapping[str, FuncSig]], provided: Mapping[str, Sequence[HostInterface]]
) -> list[ImportMatch]:
    """Compare every import with the implementations wasikv has under its name."""
    found = []
    for name, functions in imports.items():
        candidates = provided.get(name, ())
        matches = tuple(c for c in candidates if not list(_mismatches(functions, c)))
        problems: tuple[str, ...] = ()
        if candidates and not matches:
            problems = tuple(_closest_mismatches(functions, candidates))
        elif not candidates and name.startswith(OWNED_PACKAGES):
            offered = ", ".join(sorted(n for n in provided if n.startswith(OWNED_PACKAGES)))
            problems = (f"wasikv does not implement this interface (it implements {offered})",)
        found.append(ImportMatch(name, functions, matches, problems))
    return found


def plan_imports(
    imports: Mapping[str, Mapping[str, FuncSig]],
    provided: Mapping[str, Sequence[HostInterface]],
    origin: str,
) -> LinkPlan:
    """Choose an implementation for each provided interface the component imports.

    Raises `ComponentError` listing every import that no implementation
    matches, one line each, or naming the shapes a component mixes.
    """
    found = match_imports(imports, provided)
    problems = [f"{origin}: {m.name} {problem}" for m in found for problem in m.problems]
    if problems:
        raise ComponentError("\n".join(problems))
    matched = [m for m in found if m.matches]
    shapes = common_shapes(matched)
    if shapes is None:
        raise ComponentError(f"{origin}: {mixed_shapes(matched)}")
    return LinkPlan(tuple(_pick(m.matches, shapes) for m in matched), shapes, tuple(sorted(imports)))


def common_shapes(matched: Sequence[ImportMatch]) -> frozenset[str] | None:
    """The shapes every shaped import can be served in (empty: none has shapes; None: they disagree)."""
    common: frozenset[str] | None = None
    for match in matched:
        offered = frozenset().union(*(c.shapes for c in match.matches))
        if offered:
            common = offered if common is None else common & offered
    if common is None:
        return frozenset()
    return common or None


def mixed_shapes(matched: Sequence[ImportMatch]) -> str:
    """The message for a component whose imports come from different WITs of one package."""
    offered = "; ".join(
        f"{m.name} is {' or '.join(sorted(frozenset().union(*(c.shapes for c in m.matches))))}"
        for m in matched
        if any(c.shapes for c in m.matches)
    )
    return f"imports interfaces of different WITs of one package ({offered}); build it against one"


def _pick(matches: Sequence[HostInterface], shapes: frozenset[str]) -> HostInterface:
    # The first (preferred) implementation in one of the shapes chosen.
    for candidate in matches:
        if not shapes or not candidate.shapes or candidate.shapes & shapes:
            return candidate
    return matches[0]


def _closest_mismatches(functions: Mapping[str, FuncSig], candidates: Sequence[HostInterface]) -> list[str]:
    # Report the mismatches of the candidate that comes closest.
    best: list[str] | None = None
    for candidate in candidates:
        mismatches = list(_mismatches(functions, candidate))
        if best is None or len(mismatches) < len(best):
            best = mismatches
    return best or []


def _mismatches(functions: Mapping[str, FuncSig], interface: HostInterface) -> Iterable[str]:
    for name, wanted in functions.items():
        have = interface.function(name)
        if have is None:
            yield f"{name}: the component imports it, wasikv does not implement it"
        elif have.signature != wanted:
            yield f"{name}: {describe_mismatch(wanted, have.signature)}"


def check_exports(
    exports: Mapping[str, Mapping[str, FuncSig]],
    interface: str,
    expected: Mapping[str, FuncSig],
    origin: str,
    world: str,
) -> None:
    """Raise `ComponentError` unless `interface` is exported with exactly these function types."""
    functions = exports.get(interface)
    if functions is None:
        raise ComponentError(f"{origin}: the component does not export {interface} (build it for {world})")
    problems = []
    for name, signature in expected.items():
        found = functions.get(name)
        if found is None:
            problems.append(f"{origin}: {interface} does not export {name} (build it for {world})")
        elif found != signature:
            mismatch = describe_mismatch(found, signature).replace("wasikv implements", "wasikv calls")
            problems.append(f"{origin}: {interface} {name}: {mismatch}")
    if problems:
        raise ComponentError("\n".join(problems))


__all__ = [
    "OWNED_PACKAGES",
    "ImportMatch",
    "LinkPlan",
    "check_exports",
    "common_shapes",
    "exported_functions",
    "imported_functions",
    "match_imports",
    "mixed_shapes",
    "plan_imports",
]
