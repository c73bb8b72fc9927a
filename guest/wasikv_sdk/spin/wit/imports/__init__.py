"""spin_sdk's `wit.imports` modules: wasi:keyvalue under Spin's names, and Spin's key-value errors.

`wasi_keyvalue_store`, `atomics` and `batch` are wasikv's generated
bindings themselves (`wasikv_sdk.wit.imports.wasi_keyvalue_store`, `.atomics`, `.batch`),
so a bucket from one passes to the others as in spin_sdk.
"""
