"""`spin_sdk.wit.imports.batch`: wasikv's `wasi:keyvalue/batch` bindings."""

from wasikv_sdk.wit.imports.batch import *  # noqa: F403
