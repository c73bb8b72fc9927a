"""`spin_sdk.wit.imports.atomics`: wasikv's `wasi:keyvalue/atomics` bindings."""

from wasikv_sdk.wit.imports.atomics import *  # noqa: F403
