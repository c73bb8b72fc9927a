"""Spin's own interfaces, for Spin apps built with Spin's SDKs (Python, JS, Rust).

- `key_value`: `fermyon:spin/key-value@2.0.0`, on the `KeyValue`
  capability's sessions (the same stores, grants and handle limits as
  wasi:keyvalue);
- `variables`: `fermyon:spin/variables@2.0.0`, on the `Variables`
  capability (the same values as wasi:config).

Every other Spin interface is linked as traps (`wasikv.interfaces.unprovided`).
Spin 4's `spin:key-value@3.0.0` and `spin:variables@3.0.0` are among them:
they are async (component-model `async func`, `stream`, `future`), which
wasmtime's C API cannot implement on the host side.
"""

from __future__ import annotations

from ...runtime.host_functions import HostInterface
from . import key_value, variables

#: The Spin key-value interfaces wasikv serves (registered on the `KeyValue` capability).
KEY_VALUE: tuple[HostInterface, ...] = (key_value.V2,)
#: The Spin variables interfaces wasikv serves (registered on the `Variables` capability).
VARIABLES: tuple[HostInterface, ...] = (variables.V2,)
#: Every Spin interface wasikv serves.
INTERFACES: tuple[HostInterface, ...] = KEY_VALUE + VARIABLES

__all__ = ["INTERFACES", "KEY_VALUE", "VARIABLES"]
