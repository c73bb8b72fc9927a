"""Calling a component's exports with wasikv's own value conversion.

Shared by the triggers: pick which of a trigger's exports a component has
(`TriggerExport`, `select_export`), find an exported function, write its
arguments with `_canonical` fillers, call into wasm (the GIL is released),
read the result, free every value and run post-return.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from wasmtime import Store
from wasmtime.component import Func, Instance

from ..errors import ComponentError, GuestTrap, trap_cause
from ..runtime import _canonical as cv
from ..runtime import _capi
from ..runtime._capi import context_address
from ..runtime.deadlines import deadline_of
from ..runtime.linking import check_exports
from ..runtime.wit_types import FuncSig

log = logging.getLogger("wasikv")

_T = TypeVar("_T")


@dataclass(frozen=True)
class TriggerExport:
    """One export a trigger can call.

    Components built for the WIT `world` export one of `interfaces`
    (versions of one interface, the current one first) with `functions`.
    """

    world: str
    interfaces: tuple[str, ...]
    functions: Mapping[str, FuncSig]


def select_export(
    exports: Mapping[str, Mapping[str, FuncSig]], choices: Sequence[TriggerExport], origin: str
) -> tuple[TriggerExport, str]:
    """The first of `choices` the component exports, and the interface version it exports.

    The functions are type-checked with `check_exports`. Raises
    `ComponentError` (its message starting with `origin`) when the component
    exports none of them, or exports one with other function types.
    """
    for choice in choices:
        for interface in choice.interfaces:
            if interface in exports:
                check_exports(exports, interface, choice.functions, origin, choice.world)
                return choice, interface
    wanted = " or ".join(f"{c.interfaces[0]} (build it for {c.world})" for c in choices)
    raise ComponentError(f"{origin}: the component does not export {wanted}")


def export_func(
    store: Store,
    instance: Instance,
    interface: str,
    name: str,
    world: str,
    cache: MutableMapping[str, Func] | None = None,
) -> Func:
    """The function `name` of the exported `interface`; `ComponentError` if it is missing.

    With `cache` (an instance's `LiveInstance.functions`), it is looked up
    once and taken from there after.
    """
    if cache is not None:
        key = f"{interface}#{name}"
        found = cache.get(key)
        if found is None:
            found = cache[key] = export_func(store, instance, interface, name, world)
        return found
    index = instance.get_export_index(store, interface)
    func_index = None if index is None else instance.get_export_index(store, name, index)
    func = None if func_index is None else instance.get_func(store, func_index)
    if func is None:
        raise ComponentError(f"the component does not export {interface} (build it for {world})")
    return func


def call_export(
    store: Store, func: Func, args: Sequence[cv.Filler], read: Callable[[int], _T] | None = None
) -> _T | None:
    """Call `func` with arguments written by `args`; return `read(result)` (None without `read`).

    Raises `GuestTrap` when the call traps. A filler that raises leaves the
    call unmade; the caller owns whatever it had set up for it.
    """
    ctx = context_address(store)
    count = len(args)
    slots = ctypes.create_string_buffer((count + 1) * cv.VAL_SIZE)
    base = ctypes.addressof(slots)
    results = base + count * cv.VAL_SIZE
    func_ptr = _capi.func_address(func)
    try:
        for i, fill in enumerate(args):
            fill(base + i * cv.VAL_SIZE)
        error = _capi.func_call(func_ptr, ctx, base, count, results if read else None, 1 if read else 0)
    finally:
        # Unfilled slots are zero, a `false`: deleting them is harmless.
        for i in range(count):
            _capi.val_delete(base + i * cv.VAL_SIZE)
    if error:
        raise _trap(ctx, _capi.error_text(error))
    value = None
    if read is not None:
        try:
            value = read(results)
        except cv.CodecError as exc:
            raise ComponentError(f"the component returned a value of another type: {exc}") from None
        finally:
            _capi.val_delete(results)
    error = _capi.func_post_return(func_ptr, ctx)
    if error:
        raise _trap(ctx, f"after returning: {trap_text(error)}")
    return value


def _trap(ctx: int, text: str) -> GuestTrap:
    """The exception for wasmtime's whole report `text` (its wasm backtrace logged at debug level)."""
    log.debug("trap: %s", text)
    deadline = deadline_of(ctx)
    if deadline is None:
        cause = trap_cause(text)
        return GuestTrap(f"component trapped: {cause}", None if cause == text else text)
    return deadline.error(text)


def trap_text(error: int) -> str:
    """The cause of a wasmtime error, without the wasm backtrace (logged at debug level)."""
    text = _capi.error_text(error)
    log.debug("trap: %s", text)
    return trap_cause(text)
