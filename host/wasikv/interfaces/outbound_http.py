"""Outbound HTTP (`wasi:http/outgoing-handler`): wasmtime's client, or a refusal.

wasmtime implements `wasi:http` (`Linker.add_wasi_http`), but offers no hook
to filter requests by host. So a component gets either wasmtime's client,
unfiltered (its manifest allows every host), or nothing: for the rest,
`handle` is shadowed by a host function that answers every request
`err(HTTP-request-denied)` before anything leaves the process. Such a
component still links and runs; only its requests fail, as values it can
handle, never as traps.

`wasi:http/types` is wasmtime's either way: the guest builds requests with
it before calling `handle`. A store of a component that imports any
`wasi:http` interface needs `Store.set_wasi_http()` (wasmtime aborts the
process on the first `wasi:http` call of a store without one).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Hashable, Iterable

from wasmtime import Store
from wasmtime.component import Linker

from ..capability import Capability, InstanceSpec
from ..runtime import _canonical as cv
from ..runtime import _capi
from ..runtime.linking import LinkPlan
from .wasi.capability import wasi_plan

__all__ = ["DENIED", "HTTP_INTERFACE", "OUTGOING_HANDLER", "OutboundHttp", "http_imports", "link_wasi_http"]

#: The `wasi:http` 0.2 interfaces wasmtime implements for guests (never `incoming-handler`).
HTTP_INTERFACE = re.compile(r"wasi:http/(types|outgoing-handler)@0\.2\.\d+\Z")
#: The interface whose `handle` sends a request.
OUTGOING_HANDLER = re.compile(r"wasi:http/outgoing-handler@0\.2\.\d+\Z")
#: The `error-code` case a component without outbound HTTP gets.
DENIED = "HTTP-request-denied"


def link_wasi_http(linker: Linker, imports: Iterable[str], *, outbound: bool) -> None:
    """Define `wasi:http` in `linker`; without `outbound`, every `handle` of `imports` is denied.

    The refusal is defined under the exact names the component imports:
    wasmtime finds an exact name before it falls back to the newest
    semver-compatible one (its own), so no 0.2.x import reaches the client.
    """
    linker.add_wasi_http()
    if outbound:
        return
    linker.allow_shadowing = True
    try:
        for name in imports:
            if OUTGOING_HANDLER.match(name):
                with linker.root() as root, root.add_instance(name) as instance:
                    _capi.define_func(instance, "handle", _deny)
    finally:
        linker.allow_shadowing = False


def _deny(ctx: int, args: int, results: int) -> None:
    # handle(request: own<outgoing-request>, options: option<own<request-options>>)
    #   -> result<own<future-incoming-response>, error-code>
    try:
        cv.drop_foreign_resource(ctx, args)
        options = cv.option_payload(args + cv.VAL_SIZE)
        if options:
            cv.drop_foreign_resource(ctx, options)
    except cv.CodecError as exc:
        raise _capi.GuestFault(f"handle: {exc}") from None
    cv.put_result(results, False, lambda addr: cv.put_variant(addr, DENIED))


@functools.lru_cache(maxsize=256)
def http_imports(plan: LinkPlan) -> tuple[str, ...]:
    """The `wasi:http` interfaces wasmtime serves a component, by their exact names (cached per plan).

    None for a component whose `wasi:http` is wasikv's own Python one.
    """
    if wasi_plan(plan) is not None:
        return ()
    return tuple(name for name in plan.imports if HTTP_INTERFACE.match(name))


class OutboundHttp(Capability):
    """`wasi:http`: wasmtime's client when `InstanceSpec.outbound_http`, else every request is denied."""

    name = "outbound HTTP"

    def link_key(self, plan: LinkPlan, spec: InstanceSpec) -> Hashable:
        return spec.outbound_http and bool(http_imports(plan))

    def link(self, linker: Linker, plan: LinkPlan, spec: InstanceSpec) -> None:
        imports = http_imports(plan)
        if imports:
            link_wasi_http(linker, imports, outbound=spec.outbound_http)

    def open(self, store: Store, ctx: int, plan: LinkPlan, spec: InstanceSpec) -> None:
        if http_imports(plan):
            store.set_wasi_http()
