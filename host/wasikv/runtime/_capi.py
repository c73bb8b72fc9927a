"""Raw access to wasmtime's component C API, beneath wasmtime-py's generic layer.

wasmtime-py converts every value through Python objects built from the
function's runtime type: it moves `list<u8>` one element at a time and cannot
produce `err` for a `result<option<...>, ...>`. wasikv defines its host
functions directly on the C API instead, reading and writing
`wasmtime_component_val_t` memory for exactly the WIT types it implements
(see `_canonical`).

Our own function prototypes are built from wasmtime-py's loaded library so
that changing argument types here never affects wasmtime-py's prototypes.

This module is also the one place outside `wasikv.runtime`'s own codec that
reaches into wasmtime-py's private internals (`_ffi`, `_wasi`, a store's or
function's raw pointer): code elsewhere calls the helpers below, and
wasmtime errors become wasikv's own (`ComponentError`) here.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable
from ctypes import c_bool, c_char_p, c_size_t, c_uint32, c_void_p

from wasmtime import Store, WasmtimeError, _ffi, _wasi
from wasmtime._slab import Slab
from wasmtime.component import Func, LinkerInstance, ResourceType

from ..errors import ComponentError

log = logging.getLogger("wasikv")

_dll = _ffi.dll


def _proto(name: str, restype: object, *argtypes: object) -> Callable[..., int]:
    # PYFUNCTYPE keeps the GIL across the call: these functions are short and
    # never call back into Python, and releasing and re-taking the GIL would
    # cost more than the call itself on the per-call hot path.
    prototype = ctypes.PYFUNCTYPE(restype, *argtypes)  # type: ignore[arg-type]
    function: Callable[..., int] = prototype((name, _dll))
    return function


byte_vec_new = _proto("wasm_byte_vec_new", None, c_void_p, c_size_t, c_char_p)
val_new = _proto("wasmtime_component_val_new", c_void_p, c_void_p)
vallist_new_uninit = _proto("wasmtime_component_vallist_new_uninit", None, c_void_p, c_size_t)
valtuple_new_uninit = _proto("wasmtime_component_valtuple_new_uninit", None, c_void_p, c_size_t)
valrecord_new_uninit = _proto("wasmtime_component_valrecord_new_uninit", None, c_void_p, c_size_t)
resource_any_to_host = _proto(
    "wasmtime_component_resource_any_to_host", c_void_p, c_void_p, c_void_p, c_void_p
)
resource_any_delete = _proto("wasmtime_component_resource_any_delete", None, c_void_p)
resource_any_drop = _proto("wasmtime_component_resource_any_drop", c_void_p, c_void_p, c_void_p)
resource_host_new = _proto("wasmtime_component_resource_host_new", c_void_p, c_bool, c_uint32, c_uint32)
resource_host_rep = _proto("wasmtime_component_resource_host_rep", c_uint32, c_void_p)
resource_host_type = _proto("wasmtime_component_resource_host_type", c_uint32, c_void_p)
resource_host_delete = _proto("wasmtime_component_resource_host_delete", None, c_void_p)
resource_host_to_any = _proto(
    "wasmtime_component_resource_host_to_any", c_void_p, c_void_p, c_void_p, c_void_p
)
error_new = _proto("wasmtime_error_new", c_void_p, c_char_p)
error_message = _proto("wasmtime_error_message", None, c_void_p, c_void_p)
error_delete = _proto("wasm_byte_vec_delete", None, c_void_p)
wasmtime_error_delete = _proto("wasmtime_error_delete", None, c_void_p)

val_delete = _proto("wasmtime_component_val_delete", None, c_void_p)
# Calls into wasm release the GIL (CFUNCTYPE), so instances in other threads
# run in parallel; host functions called back from wasm take it again.
func_call = ctypes.CFUNCTYPE(c_void_p, c_void_p, c_void_p, c_void_p, c_size_t, c_void_p, c_size_t)(
    ("wasmtime_component_func_call", _dll)
)
func_post_return = ctypes.CFUNCTYPE(c_void_p, c_void_p, c_void_p)(
    ("wasmtime_component_func_post_return", _dll)
)

# Pointers arrive as c_size_t: plain ints, never None, and cheaper to convert
# than c_void_p on a path taken for every guest call (same ABI on 64-bit).
_FUNC_CALLBACK = ctypes.CFUNCTYPE(
    c_size_t, c_size_t, c_size_t, c_size_t, c_size_t, c_size_t, c_size_t, c_size_t
)
_DTOR_CALLBACK = ctypes.CFUNCTYPE(c_size_t, c_void_p, c_void_p, c_uint32)
_FINALIZER = ctypes.CFUNCTYPE(None, c_void_p)

_add_func = _proto(
    "wasmtime_component_linker_instance_add_func",
    c_void_p,
    c_void_p,
    c_char_p,
    c_size_t,
    _FUNC_CALLBACK,
    c_void_p,
    _FINALIZER,
)
_add_resource = _proto(
    "wasmtime_component_linker_instance_add_resource",
    c_void_p,
    c_void_p,
    c_char_p,
    c_size_t,
    c_void_p,
    _DTOR_CALLBACK,
    c_void_p,
    _FINALIZER,
)

#: Signature of a host function: (context address, args address, results address).
HostFunc = Callable[[int, int, int], None]
#: Signature of a resource destructor: (context address, rep).
HostDtor = Callable[[int, int], None]

# Python callables behind the C trampolines, by the handle passed as their
# `env`; wasmtime calls `_finalize` when a definition is dropped (the linker
# and every instance made from it are gone), which frees the slot.
_funcs: Slab[HostFunc] = Slab()
_dtors: Slab[HostDtor] = Slab()


def context_address(store: Store) -> int:
    """The address of a wasmtime store's context (what host functions receive as `ctx`)."""
    return ctypes.cast(store._context(), c_void_p).value or 0


def trap(message: str) -> int:
    """A new wasmtime error to return from a callback: the guest call traps."""
    return error_new(message.encode("utf-8", "replace"))


def raise_if_error(error: int | None, what: str) -> None:
    """Turn a non-null `wasmtime_error_t*` into a Python exception."""
    if not error:
        return
    vec = _ffi.wasm_byte_vec_t()
    error_message(error, ctypes.addressof(vec))
    message = ctypes.string_at(vec.data, vec.size).decode("utf-8", "replace") if vec.data else "unknown error"
    error_delete(ctypes.addressof(vec))
    wasmtime_error_delete(error)
    raise ComponentError(f"{what}: {message}")


def error_text(error: int) -> str:
    """The message of a `wasmtime_error_t*` (taken over: it is freed with the returned object)."""
    return str(WasmtimeError._from_ptr(ctypes.cast(error, ctypes.POINTER(_ffi.wasmtime_error_t))))


def func_address(func: Func) -> int:
    """The address of a component function's `wasmtime_component_func_t`, for `func_call`."""
    return ctypes.addressof(func._func)


def leak_store(store: Store) -> None:
    """Forget `store` without freeing it: a thread still runs a guest in it (it must outlive the process)."""
    store._consume()


def pending_output_callbacks() -> list[object]:
    """The guest-output callbacks (`WasiConfig.stdout_custom`...) wasmtime has not released yet."""
    return list(_wasi.CUSTOM_OUTPUTS.handles.values())


def _linker_ptr(instance: LinkerInstance) -> int:
    return ctypes.cast(instance.ptr(), c_void_p).value or 0


def _call_func_py(env: int, ctx: int, _ty: int, args: int, _nargs: int, results: int, _nres: int) -> int:
    # Nothing may escape a callback: an exception here would unwind into Rust.
    try:
        _funcs.handles[env](ctx, args, results)
    except GuestFault as fault:
        return trap(str(fault))
    except BaseException as exc:
        log.exception("host function failed")
        return trap(f"wasikv host function failed: {exc!r}")
    return 0


def _call_dtor_py(env: int, ctx: int, rep: int) -> int:
    try:
        _dtors.get(env or 0)(ctx, rep)
    except GuestFault as fault:  # a handle rule the guest broke (dropping a parent before its child)
        return trap(str(fault))
    except BaseException as exc:
        log.exception("resource destructor failed")
        return trap(f"wasikv resource destructor failed: {exc!r}")
    return 0


def _finalize_func_py(env: int | None) -> None:
    _funcs.deallocate(env or 0)


def _finalize_dtor_py(env: int | None) -> None:
    _dtors.deallocate(env or 0)


# The C trampolines: one of each for the whole process, never freed.
_call_func = _FUNC_CALLBACK(_call_func_py)
_call_dtor = _DTOR_CALLBACK(_call_dtor_py)
_finalize_func = _FINALIZER(_finalize_func_py)
_finalize_dtor = _FINALIZER(_finalize_dtor_py)


class GuestFault(Exception):
    """A host function refused its input (a mistyped value): the call traps with this message."""


def define_func(instance: LinkerInstance, name: str, func: HostFunc) -> None:
    """Define `name` in a linker instance, implemented by `func` on raw values.

    `GuestFault` escaping `func` traps the guest with its message; any other
    exception is a bug in wasikv: it is logged with its traceback, then the
    guest traps.
    """
    handle = _funcs.allocate(func)
    encoded = name.encode("utf-8")
    error = _add_func(_linker_ptr(instance), encoded, len(encoded), _call_func, handle, _finalize_func)
    if error:
        _funcs.deallocate(handle)
    raise_if_error(error, name)


def define_resource(instance: LinkerInstance, name: str, type_id: int, dtor: HostDtor) -> None:
    """Define a host resource type whose handles are dropped through `dtor`."""
    handle = _dtors.allocate(dtor)
    resource_type = ResourceType.host(type_id)
    type_ptr = ctypes.cast(resource_type.ptr(), c_void_p).value
    encoded = name.encode("utf-8")
    error = _add_resource(
        _linker_ptr(instance), encoded, len(encoded), type_ptr, _call_dtor, handle, _finalize_dtor
    )
    if error:
        _dtors.deallocate(handle)
    raise_if_error(error, name)
