"""`wasi:cli` stdin, stdout and stderr 0.2, as wasmtime gives them by default.

stdin is empty (every read: `closed`); stdout and stderr write straight into
the instance's `stdout`/`stderr`, or this process's when it has none. Each
call makes a new stream, as wasmtime's do.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from .io import InputStream, OutputStream
from .pipes import BytesSource, ForwardingSink
from .state import WasiInstance

__all__ = ["BODIES", "RESOURCES", "get_stderr", "get_stdin", "get_stdout"]


class _ProcessOutput:
    """This process's stdout or stderr, looked up at each write (tests and servers replace them)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def write(self, data: bytes) -> object:
        """Write to the binary buffer of `sys.<name>`."""
        return getattr(sys, self.name).buffer.write(data)

    def flush(self) -> None:
        """Flush `sys.<name>`."""
        getattr(sys, self.name).flush()


def get_stdin(instance: WasiInstance) -> InputStream:
    """`get-stdin`: an empty stream."""
    return InputStream(instance, BytesSource(b""))


def get_stdout(instance: WasiInstance) -> OutputStream:
    """`get-stdout`: a stream into the instance's stdout."""
    target = instance.stdout if instance.stdout is not None else _ProcessOutput("stdout")
    return OutputStream(instance, ForwardingSink(target))


def get_stderr(instance: WasiInstance) -> OutputStream:
    """`get-stderr`: a stream into the instance's stderr."""
    target = instance.stderr if instance.stderr is not None else _ProcessOutput("stderr")
    return OutputStream(instance, ForwardingSink(target))


#: The body of every function of `wasi:cli` stdin, stdout and stderr.
BODIES: dict[tuple[str, str], Callable[..., Any]] = {
    ("wasi:cli/stdin", "get-stdin"): get_stdin,
    ("wasi:cli/stdout", "get-stdout"): get_stdout,
    ("wasi:cli/stderr", "get-stderr"): get_stderr,
}

#: No resource of their own (their streams are `wasi:io/streams`').
RESOURCES: dict[tuple[str, str], type] = {}
