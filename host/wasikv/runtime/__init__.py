"""The wasmtime seam: how wasikv loads, links and calls components.

The component C API through ctypes (`_capi`) and the canonical ABI
(`_canonical`, `codec`, `wit_types`), host functions and their linking
(`host_functions`, `linking`), deadlines and interruption (`deadlines`),
pooled instances (`instance_pool`), the worker threads guest calls run on
(`workers`), the compiled-component cache
(`compile_cache`), and what a guest's failure means (`guest_errors`).
Nothing here knows about the server, the command line, triggers or apps.
"""
