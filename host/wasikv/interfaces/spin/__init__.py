"""Spin's own interfaces, for Spin apps built with Spin's SDKs (Python, JS, Rust).

- `key_value`: `fermyon:spin/key-value@2.0.0`, on the `KeyValue`
  capability's sessions (the same stores, grants and handle limits as
  wasi:keyvalue);
- `variables`: `fermyon:spin/variables@2.0.0`, on the `Variables`
  capability (the same values as wasi:config);
- `unprovided`: every other Spin interface, which wasikv names and does not serve.

Spin 4's `spin:key-value@3.0.0` and `spin:variables@3.0.0` are async
(component-model `async func`, `stream`, `future`), which wasmtime's C API
cannot implement on the host side; they are among the unprovided ones.
"""

from __future__ import annotations

from ...runtime.host_functions import HostInterface
from . import key_value, variables
from .unprovided import NOT_PROVIDED, SPIN_INTERFACE, not_provided, trap_message

#: The Spin key-value interfaces wasikv serves (registered on the `KeyValue` capability).
KEY_VALUE: tuple[HostInterface, ...] = (key_value.V2,)
#: The Spin variables interfaces wasikv serves (registered on the `Variables` capability).
VARIABLES: tuple[HostInterface, ...] = (variables.V2,)
#: Every Spin interface wasikv serves.
INTERFACES: tuple[HostInterface, ...] = KEY_VALUE + VARIABLES

__all__ = [
    "INTERFACES",
    "KEY_VALUE",
    "NOT_PROVIDED",
    "SPIN_INTERFACE",
    "VARIABLES",
    "not_provided",
    "trap_message",
]
