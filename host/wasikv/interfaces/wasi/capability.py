"""The Python WASI layer as a capability: planned per component, chosen per instance, linked, given.

Python WASI (wasikv's own `wasi:io` and `wasi:http`) serves every HTTP
handler, and every component that sends HTTP requests and may reach at
least one host: its requests go through wasikv's `HttpClient`, which
enforces the component's `allowed_outbound_hosts`. A component that may
reach no host keeps wasmtime's WASI (cheaper), its `handle` shadowed by a
refusal (`interfaces.outbound_http`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass

from wasmtime import Engine, Store
from wasmtime.component import Component, Linker

from ...capability import Capability, InstanceSpec
from ...errors import ComponentError
from ...runtime import deadlines
from ...runtime.linking import LinkPlan
from .http.sender import ClientSender
from .http_client import HttpClient
from .linking import INCOMING_HANDLER, WasiPlan, define_wasi, plan_wasi
from .state import WasiInstance
from .table import WasiState

NAME = "Python WASI"


@dataclass(frozen=True)
class _Unplannable:
    """A component that only sends requests and that Python WASI cannot serve: why, for when it must."""

    problem: str


def wasi_plan(plan: LinkPlan, spec: InstanceSpec | None = None) -> WasiPlan | None:
    """The Python WASI plan of a component given `spec` (None: wasmtime's WASI serves it all).

    An HTTP handler always has one; a component that only sends requests
    has one when `spec` lets it reach some host. Raises `ComponentError`
    for such a component whose imports Python WASI cannot serve.
    """
    found: WasiPlan | _Unplannable | None = plan.extra(NAME)
    if found is None:
        return None
    if isinstance(found, WasiPlan) and found.handler is not None:
        return found
    if spec is None or not spec.allowed_outbound_hosts.entries:
        return None
    if isinstance(found, _Unplannable):
        raise ComponentError(found.problem)
    return found


class PythonWasi(Capability):
    """`wasi:io`, `wasi:http` and what shares their resources, in Python.

    `client` gives the `HttpClient` every instance's requests go through
    (one per host, made on first use).
    """

    name = NAME

    def __init__(self, client: Callable[[], HttpClient]) -> None:
        super().__init__()
        self._client = client

    def prepare(self, engine: Engine, component: Component, origin: str) -> Hashable | None:
        try:
            return plan_wasi(engine, component, origin)
        except ComponentError as exc:
            exports = component.type.exports(engine)
            if any(INCOMING_HANDLER.match(name) for name in exports):
                raise
            # It may never send a request: refuse it only when it may.
            return _Unplannable(str(exc))

    def link_key(self, plan: LinkPlan, spec: InstanceSpec) -> Hashable:
        return wasi_plan(plan, spec) is not None

    def link(self, linker: Linker, plan: LinkPlan, spec: InstanceSpec) -> None:
        wasi = wasi_plan(plan, spec)
        if wasi is not None:
            define_wasi(linker, wasi, self.states)

    def open(self, store: Store, ctx: int, plan: LinkPlan, spec: InstanceSpec) -> None:
        if wasi_plan(plan, spec) is not None:
            instance = WasiInstance(deadlines.deadline_of(ctx), spec.stdout, spec.stderr)
            allowed = spec.allowed_outbound_hosts
            if allowed.entries:
                instance.http_sender = ClientSender(self._client(), allowed)
            self.states[ctx] = WasiState(instance)

    def state(self, ctx: int) -> WasiState:
        """The Python WASI state of the instance whose store context is `ctx`."""
        state: WasiState = self.states[ctx]
        return state

    def release(self, state: WasiState) -> None:
        state.table.close()


__all__ = ["NAME", "PythonWasi", "wasi_plan"]
