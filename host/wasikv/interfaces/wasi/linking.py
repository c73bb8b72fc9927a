"""Which of a component's imports wasikv defines in Python, and defining them on a linker.

wasmtime's own WASI (`add_wasip2`) and a Python `wasi:http/types` cannot
be mixed freely: a resource type is one implementation's, so every import
that shares a resource type with the Python ones (`wasi:io/streams` with
`wasi:cli/stdout`, `wasi:filesystem/types`, `wasi:sockets/tcp`, ...) must
be Python too. `plan_wasi` finds that set from the component's own import
types (resource types compare equal exactly when they are shared), checks
each imported function against the vendored WIT (host functions defined
through the C API are not type-checked by wasmtime), and assigns host
resource type ids. The rest stays with wasmtime.

The rules the feasibility study found, kept here:
- define under the component's exact import names (componentize-py 0.25.1
  imports `@0.2.9`; wasmtime 50 defines `@0.2.12`): wasmtime finds an exact
  name before it falls back to its newest semver-compatible one;
- shadow wasmtime's definitions only where names are equal;
- never `define_unknown_imports_as_traps` after `add_wasip2` (it shadows
  wasmtime's WASI with traps): an import nobody implements is stubbed by name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wasmtime import Engine
from wasmtime.component import Component, Linker
from wasmtime.component import _types as wt
from wasmtime.component._resource_type import ResourceType

from ...errors import ComponentError
from ...runtime import _canonical as cv
from ...runtime import _capi
from ...runtime.codec import reader, writer
from ...runtime.wit_source import wasi_interfaces
from ...runtime.wit_types import Borrow, FuncSig, Own, describe_mismatch, func_from_wasmtime, instance_names
from .bodies import BODIES
from .state import Unavailable
from .table import WasiState

_VERSION = re.compile(r"@[^/]*\Z")

#: Interfaces defined in Python whenever wasikv serves a component's HTTP:
#: the ones whose resources the host creates (`incoming-request`,
#: `response-outparam`) and the `wasi:io` types they use.
SEED = frozenset(
    {"wasi:io/error", "wasi:io/poll", "wasi:io/streams", "wasi:http/types", "wasi:http/outgoing-handler"}
)

#: What wasmtime's `add_wasip2` implements (wasmtime 50: each at @0.2.12, any 0.2.x by semver).
_WASMTIME_WASI = re.compile(
    r"wasi:(io/(error|poll|streams)|clocks/(wall-clock|monotonic-clock)|random/(random|insecure|insecure-seed)"
    r"|cli/(environment|exit|stdin|stdout|stderr|terminal-(input|output|stdin|stdout|stderr))"
    r"|filesystem/(types|preopens)"
    r"|sockets/(network|instance-network|tcp|tcp-create-socket|udp|udp-create-socket|ip-name-lookup))"
    r"@0\.2\.\d+\Z"
)
#: The version wasmtime defines its WASI under: an import of exactly this name shadows it.
WASMTIME_WASI_VERSION = "0.2.12"

#: The export that makes a component a standard HTTP handler.
INCOMING_HANDLER = re.compile(r"wasi:http/incoming-handler@0\.2\.\d+\Z")
#: The import through which a component sends HTTP requests.
OUTGOING_HANDLER = re.compile(r"wasi:http/outgoing-handler@0\.2\.\d+\Z")

# Host resource type ids of the Python WASI resources ("wp" + n): distinct
# from wasi:keyvalue's (0x6B76_....), within one linker.
_TYPE_BASE = 0x7770_0000


def base_name(name: str) -> str:
    """An interface name without its version: `wasi:io/streams@0.2.9` -> `wasi:io/streams`."""
    return _VERSION.sub("", name)


def wasmtime_provides(name: str) -> bool:
    """Whether wasmtime's `add_wasip2` implements the interface `name` (exact, versioned)."""
    return bool(_WASMTIME_WASI.match(name))


@dataclass(eq=False)
class WasiPlan:
    """What wasikv defines in Python for one component, and how.

    Compared by identity: a host makes one per component.
    """

    #: Exact names of the imports defined in Python, in import order.
    python: tuple[str, ...] = ()
    #: Exact names of imports nobody implements: linked, every call traps.
    stubbed: tuple[str, ...] = ()
    #: Per Python import: {local resource name: host type id}.
    resources: dict[str, dict[str, int]] = field(default_factory=dict)
    #: Per Python import: the resources it defines (not `use`d from another).
    defines: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: Per Python import: {function: its type as the component imports it}.
    functions: dict[str, dict[str, FuncSig]] = field(default_factory=dict)
    #: (interface base name, resource) -> host type id, for the host to make handles.
    type_ids: dict[tuple[str, str], int] = field(default_factory=dict)
    #: The exact name of the `incoming-handler` the component exports, if any (None: the
    #: component only sends requests, and is served in Python only when it may reach a host).
    handler: str | None = None
    #: The host type ids of the resources defined in Python (the others are wasmtime's).
    python_types: frozenset[int] = frozenset()

    def type_id(self, interface: str, resource: str) -> int:
        """The host type id of `resource` of `interface` (base name), for handles the host makes."""
        try:
            return self.type_ids[(interface, resource)]
        except KeyError:
            raise ComponentError(f"the component does not import {interface} {resource}") from None


def plan_wasi(engine: Engine, component: Component, origin: str) -> WasiPlan | None:
    """The Python WASI plan of a component that exports `wasi:http/incoming-handler` or imports
    `wasi:http/outgoing-handler`, else None.

    Raises `ComponentError` naming every imported function whose type
    differs from the vendored WIT's, one line each.
    """
    exports = component.type.exports(engine)
    handler = next((name for name in exports if INCOMING_HANDLER.match(name)), None)
    imports = component.type.imports(engine)
    if handler is None and not any(OUTGOING_HANDLER.match(name) for name in imports):
        return None
    declared = wasi_interfaces()
    plan = WasiPlan(handler=handler)
    known: list[tuple[ResourceType, int, bool]] = []  # (type, host id, defined in Python)
    python: list[str] = []
    stubbed: list[str] = []
    problems: list[str] = []
    for name, extern in imports.items():
        ty = extern.ty
        if not isinstance(ty, wt.ComponentInstanceType):
            continue
        members = {member: item.ty for member, item in ty.exports(engine).items()}
        resources = [(member, t) for member, t in members.items() if isinstance(t, ResourceType)]
        base = base_name(name)
        shares = any(t == k for _, t in resources for k, _, ours in known if ours)
        ours = base in SEED or shares
        local: dict[str, int] = {}
        defines: list[str] = []
        for member, rty in resources:
            found = next((tid for k, tid, _ in known if k == rty), None)
            if found is None:
                found = _TYPE_BASE + len(known) + 1
                known.append((rty, found, ours))
                defines.append(member)
                plan.type_ids[(base, member)] = found
            local[member] = found
        if not ours:
            continue
        interface = declared.get(base)
        if interface is None:
            if wasmtime_provides(name):
                problems.append(
                    f"{origin}: {name} shares resources with wasi:http, and wasikv has no WIT for it"
                )
            stubbed.append(name)
        else:
            python.append(name)
        names = instance_names(members)
        functions = {
            m: func_from_wasmtime(t, names) for m, t in members.items() if isinstance(t, wt.FuncType)
        }
        if interface is not None:
            for function, signature in functions.items():
                have = interface.functions.get(function)
                if have is None:
                    problems.append(
                        f"{origin}: {name} {function}: the component imports it, wasikv's WIT has none"
                    )
                elif have != signature:
                    problems.append(f"{origin}: {name} {function}: {describe_mismatch(signature, have)}")
        plan.resources[name] = local
        plan.defines[name] = tuple(defines)
        plan.functions[name] = functions
    if problems:
        raise ComponentError("\n".join(problems))
    plan.python, plan.stubbed = tuple(python), tuple(stubbed)
    plan.python_types = frozenset(tid for _, tid, ours in known if ours)
    return plan


def define_wasi(linker: Linker, plan: WasiPlan, states: Mapping[int, WasiState]) -> None:
    """Define every Python and stubbed import of `plan` on `linker` (after `add_wasip2`)."""
    linker.allow_shadowing = True
    try:
        for name in plan.python + plan.stubbed:
            base = base_name(name)
            with linker.root() as root, root.add_instance(name) as instance:
                for resource in plan.defines[name]:
                    _capi.define_resource(
                        instance, resource, plan.resources[name][resource], _dropper(states)
                    )
                for function, signature in plan.functions[name].items():
                    body = BODIES.get((base, function)) if name in plan.python else None
                    callback = (
                        _trap(f"wasikv does not provide {base} (called {function})")
                        if body is None
                        else _trap(body.message)
                        if isinstance(body, Unavailable)
                        else _dispatcher(
                            f"{base}#{function}",
                            signature,
                            body,
                            plan.resources[name],
                            plan.python_types,
                            states,
                        )
                    )
                    _capi.define_func(instance, function, callback)
    finally:
        linker.allow_shadowing = False


def _dropper(states: Mapping[int, WasiState]) -> _capi.HostDtor:
    def drop(ctx: int, rep: int) -> None:
        state = states.get(ctx)
        if state is not None:  # the instance may already be gone
            state.table.drop(rep)

    return drop


def _trap(message: str) -> _capi.HostFunc:
    def trap(ctx: int, args: int, results: int) -> None:
        raise _capi.GuestFault(message)

    return trap


def _dispatcher(
    qualified: str,
    signature: FuncSig,
    body: Callable[..., Any],
    resources: Mapping[str, int],
    python_types: frozenset[int],
    states: Mapping[int, WasiState],
) -> _capi.HostFunc:
    """The raw callback of one function: read (handles become objects), call `body`, write."""

    def handle_in(ctx: int, addr: int, ty: Own | Borrow) -> Any:
        if resources.get(ty.resource) not in python_types:
            # wasmtime's (a wasi:sockets network): the body never needs it.
            if isinstance(ty, Own):
                cv.drop_foreign_resource(ctx, addr)
            return None
        table = states[ctx].table
        rep = cv.read_resource_rep(ctx, addr)
        return table.take(rep) if isinstance(ty, Own) else table.get(rep)

    def handle_out(ctx: int, value: Any) -> int:
        return states[ctx].table.add(value)

    reads = [(reader(ty, handle_in), i * cv.VAL_SIZE) for i, (_, ty) in enumerate(signature.params)]
    write = None if signature.result is None else writer(signature.result, resources, handle_out)
    prefix = f"{qualified}: "

    def call(ctx: int, args: int, results: int) -> None:
        state = states[ctx]
        try:
            values = [read(ctx, args + offset) for read, offset in reads]
        except cv.CodecError as exc:
            raise _capi.GuestFault(prefix + str(exc)) from None
        value = body(state.instance, *values)
        if write is not None:
            write(ctx, results, value)

    return call


__all__ = [
    "INCOMING_HANDLER",
    "OUTGOING_HANDLER",
    "SEED",
    "WASMTIME_WASI_VERSION",
    "WasiPlan",
    "base_name",
    "define_wasi",
    "plan_wasi",
    "wasmtime_provides",
]
