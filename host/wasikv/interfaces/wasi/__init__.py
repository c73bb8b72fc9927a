"""The WASI interfaces wasikv implements in Python: wasi:io, wasi:http and those sharing their resources.

wasmtime-py cannot create the resources a `wasi:http/incoming-handler`
call needs (`incoming-request`, `response-outparam`), so for such
components wasikv defines `wasi:http/types`, `wasi:io/*` and every
interface that shares a resource type with them as its own host resources;
wasmtime keeps the rest (random, wall-clock, environment, exit, terminals).
Being Python, every blocking call among them (`poll`, blocking stream reads
and writes, clock waits) honours the instance's deadline.
"""
