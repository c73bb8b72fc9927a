"""`spin_sdk.wit.imports.wasi_keyvalue_store`: wasikv's `wasi:keyvalue/store` bindings."""

from wasikv_sdk.wit.imports.wasi_keyvalue_store import *  # noqa: F403
