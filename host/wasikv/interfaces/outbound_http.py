"""Outbound HTTP (`wasi:http/outgoing-handler`) of components that may reach no host: a refusal.

A component that may reach some host is served by Python WASI
(`interfaces.wasi`): its requests go through wasikv's own client, which
enforces its `allowed_outbound_hosts`. One that may reach none keeps
wasmtime's WASI, which is cheaper, and wasmtime's `wasi:http/types` to build
requests with; but wasmtime's client is never reachable: `handle` is
shadowed by a host function that answers every request
`err(HTTP-request-denied)` before anything leaves the process. Such a
component still links and runs; only its requests fail, as values it can
handle, never as traps.

A store of a component that imports any of wasmtime's `wasi:http`
interfaces needs `Store.set_wasi_http()` (wasmtime aborts the process on
the first `wasi:http` call of a store without one).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from wasmtime import Store
from wasmtime.component import Linker

from ..capability import Capability, InstanceSpec
from ..runtime import _canonical as cv
from ..runtime import _capi
from ..runtime.linking import LinkPlan
from .wasi.capability import wasi_plan
from .wasi.linking import OUTGOING_HANDLER

__all__ = ["DENIED", "HTTP_INTERFACE", "OUTGOING_HANDLER", "OutboundHttp", "http_imports", "link_wasi_http"]

#: The `wasi:http` 0.2 interfaces wasmtime implements for guests (never `incoming-handler`).
HTTP_INTERFACE = re.compile(r"wasi:http/(types|outgoing-handler)@0\.2\.\d+\Z")
#: The `error-code` case a component that may reach no host gets.
DENIED = "HTTP-request-denied"


def link_wasi_http(linker: Linker, imports: Iterable[str]) -> None:
    """Define wasmtime's `wasi:http` in `linker`, with every `handle` of `imports` denied.

    The refusal is defined under the exact names the component imports:
    wasmtime finds an exact name before it falls back to the newest
    semver-compatible one (its own), so no 0.2.x import reaches the client.
    """
    linker.add_wasi_http()
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


def http_imports(plan: LinkPlan, spec: InstanceSpec) -> tuple[str, ...]:
    """The `wasi:http` interfaces wasmtime serves a component given `spec`, by their exact names.

    None for a component whose `wasi:http` is wasikv's own Python one.
    """
    if wasi_plan(plan, spec) is not None:
        return ()
    return _http_imports(plan)


@functools.lru_cache(maxsize=256)
def _http_imports(plan: LinkPlan) -> tuple[str, ...]:
    return tuple(name for name in plan.imports if HTTP_INTERFACE.match(name))


class OutboundHttp(Capability):
    """wasmtime's `wasi:http/types` and a refusal of every request, for components on wasmtime's WASI.

    Which those are is `PythonWasi`'s choice (its `link_key` keeps their
    linkers apart); this adds nothing to the key.
    """

    name = "outbound HTTP"

    def link(self, linker: Linker, plan: LinkPlan, spec: InstanceSpec) -> None:
        imports = http_imports(plan, spec)
        if imports:
            link_wasi_http(linker, imports)

    def open(self, store: Store, ctx: int, plan: LinkPlan, spec: InstanceSpec) -> None:
        if http_imports(plan, spec):
            store.set_wasi_http()
