"""A trapped guest told as its own Python exception, the same on every path that runs one.

`Host.instantiate` passes every instance's stderr through a `GuestStderr`
(`wasikv.runtime.guest_errors`): tracebacks get the app's file names and
source lines, and componentize-py's panic text goes unless it is asked for
(`verbose`). When the instance traps, its `Deadline` hands the trap to
`explain`, which turns componentize-py's "unreachable" into the guest's
uncaught exception, with its type, message and traceback as attributes.
`wasikv run`, `Host.run`, calls into `Host.instantiate`'s instances and
every trigger share this, so a `.wasm` fails in the same words everywhere.
"""

from __future__ import annotations

import logging
import re
import sys

from ..errors import GuestTrap
from .guest_errors import GuestStderr

#: The logger of guest output (stdout lines at INFO, stderr lines at WARNING);
#: at DEBUG, componentize-py's panic text after an uncaught exception is kept.
GUEST_LOGGER = "wasikv.guest"

#: The message of a trap whose guest raised an exception it could not print.
UNPRINTED = (
    "component trapped: the guest raised an exception it could not print,"
    " most likely a MemoryError with no memory left"
)

# Frames of componentize-py's runtime panicking in an export: the guest's Python code raised.
_UNCAUGHT = ("!core::panicking::", "componentize_py_runtime.wasm!wit_dylib_export_call")
# Its panic message then, when it has the memory to print it.
_UNCAUGHT_PANIC = "Python function threw an unexpected exception"
# The last line of a traceback: a (dotted) type name, then its message if it has one.
_EXCEPTION_LINE = re.compile(r"([A-Za-z_][\w.]*)(?:: (.*))?")


def verbose() -> bool:
    """Whether a guest's panic text is shown: the `wasikv.guest` logger (or `wasikv`'s) is at DEBUG."""
    return logging.getLogger(GUEST_LOGGER).isEnabledFor(logging.DEBUG) or logging.getLogger(
        "wasikv"
    ).isEnabledFor(logging.DEBUG)


def explain(trap: GuestTrap, stderr: GuestStderr) -> GuestTrap:
    """`trap` as the guest's uncaught Python exception, when `stderr` shows it was one; else `trap`.

    An uncaught exception is a traceback followed by componentize-py's
    panic (or a trap in its panicking frames): then the message names the
    exception and the attributes carry it. Timeouts and interruptions are
    kept as they are.
    """
    stderr.finish()
    if type(trap) is not GuestTrap:
        return trap
    uncaught = trap.detail is not None and all(frame in trap.detail for frame in _UNCAUGHT)
    if stderr.exception is not None and (stderr.panic is not None or uncaught):
        said = _EXCEPTION_LINE.fullmatch(stderr.exception)
        kind, message = (said.group(1), said.group(2) or "") if said else (stderr.exception, "")
        return GuestTrap(
            f"component trapped: the guest raised {stderr.exception}",
            trap.detail,
            guest_exception_type=kind,
            guest_message=message,
            guest_traceback=stderr.traceback,
        )
    if stderr.panic in (None, _UNCAUGHT_PANIC) and uncaught:
        # componentize-py's runtime panics on an exception it was not able to print,
        # which (short of the guest closing its own stderr) means no memory was left.
        return GuestTrap(UNPRINTED, trap.detail)
    return trap


class ProcessStderr:
    """This process's `sys.stderr`, as a binary stream (looked up at each write, as `print` does)."""

    def write(self, data: bytes) -> int:
        """Write `data` after whatever was written to `sys.stderr` as text."""
        stream = sys.stderr
        if stream is None:  # pythonw: no console
            return len(data)
        stream.flush()
        buffer = getattr(stream, "buffer", None)
        if buffer is None:
            stream.write(data.decode("utf-8", "replace"))
        else:
            buffer.write(data)
        return len(data)

    def flush(self) -> None:
        """Flush `sys.stderr`."""
        if sys.stderr is not None:
            sys.stderr.flush()


__all__ = ["GUEST_LOGGER", "UNPRINTED", "ProcessStderr", "explain", "verbose"]
