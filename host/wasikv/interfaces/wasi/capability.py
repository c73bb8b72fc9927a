"""The Python WASI layer as a capability: planned per component, linked, given to each instance."""

from __future__ import annotations

from collections.abc import Hashable

from wasmtime import Engine, Store
from wasmtime.component import Component, Linker

from ...capability import Capability, InstanceSpec
from ...runtime import deadlines
from ...runtime.linking import LinkPlan
from .linking import WasiPlan, define_wasi, plan_wasi
from .state import WasiInstance
from .table import WasiState

NAME = "Python WASI"


def wasi_plan(plan: LinkPlan) -> WasiPlan | None:
    """The Python WASI plan of a component (None: wasmtime's WASI serves it all)."""
    found: WasiPlan | None = plan.extra(NAME)
    return found


class PythonWasi(Capability):
    """`wasi:io`, `wasi:http` and what shares their resources, in Python (for HTTP handlers)."""

    name = NAME

    def prepare(self, engine: Engine, component: Component, origin: str) -> Hashable | None:
        return plan_wasi(engine, component, origin)

    def link(self, linker: Linker, plan: LinkPlan, spec: InstanceSpec) -> None:
        wasi = wasi_plan(plan)
        if wasi is not None:
            define_wasi(linker, wasi, self.states)

    def open(self, store: Store, ctx: int, plan: LinkPlan, spec: InstanceSpec) -> None:
        if wasi_plan(plan) is not None:
            instance = WasiInstance(deadlines.deadline_of(ctx), spec.stdout, spec.stderr)
            self.states[ctx] = WasiState(instance)

    def state(self, ctx: int) -> WasiState:
        """The Python WASI state of the instance whose store context is `ctx`."""
        state: WasiState = self.states[ctx]
        return state

    def release(self, state: WasiState) -> None:
        state.table.close()


__all__ = ["NAME", "PythonWasi", "wasi_plan"]
