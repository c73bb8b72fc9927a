"""Spin interfaces wasikv does not provide: linked so that an unmodified Spin app loads, each call traps.

A Spin app imports every interface of Spin's world (sqlite, redis, mqtt,
llm, postgres, mysql, ...) whether it uses them or not. wasikv provides
Spin's key-value and variables; the rest are linked here so the app
instantiates, and a call of any of their functions traps with a message
naming the interface and saying wasikv does not provide it. `wasikv
inspect` lists such imports before anything runs. Imports outside Spin's
packages that nobody provides are still refused when the component loads.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass

from wasmtime import Engine
from wasmtime.component import Component, Linker
from wasmtime.component import _types as wt
from wasmtime.component._resource_type import ResourceType

from ..capability import Capability, InstanceSpec
from ..runtime import _capi
from ..runtime.linking import LinkPlan

#: Spin's own packages: `fermyon:spin/llm@2.0.0`, `fermyon:spin/mqtt`, `spin:postgres/postgres@3.0.0`...
SPIN_PACKAGES = re.compile(r"(fermyon:spin|spin:[a-z0-9-]+)/[a-z0-9-]+(@[0-9A-Za-z.+-]+)?\Z")

# Host resource type ids of the stubbed resources ("up" + n).
_TYPE_BASE = 0x7570_0000


def not_provided(interface: str) -> str:
    """The trap message of a call into `interface`."""
    return f"{interface} is not provided by wasikv (it serves Spin's key-value and variables only)"


@dataclass(frozen=True)
class StubbedImport:
    """One import linked as traps: its exact name, the resources it defines and its functions."""

    name: str
    resources: tuple[tuple[str, int], ...]
    functions: tuple[str, ...]


def unprovided_imports(
    engine: Engine, component: Component, provided: Mapping[str, object]
) -> tuple[StubbedImport, ...]:
    """The Spin imports of `component` that nobody in `provided` implements, ready to stub."""
    stubs: list[StubbedImport] = []
    known: list[ResourceType] = []
    for name, extern in component.type.imports(engine).items():
        ty = extern.ty
        if not isinstance(ty, wt.ComponentInstanceType) or name in provided or not SPIN_PACKAGES.match(name):
            continue
        members = {member: item.ty for member, item in ty.exports(engine).items()}
        resources = []
        for member, item in members.items():
            if isinstance(item, ResourceType) and not any(item == seen for seen in known):
                known.append(item)
                resources.append((member, _TYPE_BASE + len(known)))
        functions = tuple(member for member, item in members.items() if isinstance(item, wt.FuncType))
        stubs.append(StubbedImport(name, tuple(resources), functions))
    return tuple(stubs)


class Unprovided(Capability):
    """Links the Spin interfaces wasikv does not provide, each function a trap naming its interface."""

    name = "unprovided Spin interfaces"

    def __init__(self, provided: Callable[[], Mapping[str, Sequence[object]]]) -> None:
        super().__init__()
        self._provided = provided

    def prepare(self, engine: Engine, component: Component, origin: str) -> Hashable | None:
        return unprovided_imports(engine, component, self._provided()) or None

    def link(self, linker: Linker, plan: LinkPlan, spec: InstanceSpec) -> None:
        stubs: tuple[StubbedImport, ...] | None = plan.extra(self.name)
        for stub in stubs or ():
            message = not_provided(stub.name)
            with linker.root() as root, root.add_instance(stub.name) as instance:
                for resource, type_id in stub.resources:
                    _capi.define_resource(instance, resource, type_id, _ignore_drop)
                for function in stub.functions:
                    _capi.define_func(instance, function, _trap(f"{message} (called {function})"))


def _ignore_drop(ctx: int, rep: int) -> None:
    """No handle of a stubbed resource can exist: nothing to release."""


def _trap(message: str) -> _capi.HostFunc:
    def trap(ctx: int, args: int, results: int) -> None:
        raise _capi.GuestFault(message)

    return trap


__all__ = ["SPIN_PACKAGES", "StubbedImport", "Unprovided", "not_provided", "unprovided_imports"]
