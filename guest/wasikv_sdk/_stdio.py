"""Guest stdout and stderr that never drop what a write could not pass at once.

componentize-py's `sys.stdout` and `sys.stderr` are text wrappers straight
over unbuffered `FileIO`. A WASI output stream takes only so much per write
(8 KiB through wasikv's captured output, 64 KiB to a file or pipe), and a
text wrapper ignores a short write: `print` of a longer line lost the rest
without an error. Measured: a 20,000-character line arrived as its first
8,192 bytes. Here every write is repeated until all of it is written.
"""

from __future__ import annotations

import io
import sys
from typing import Any


class _WholeWrites(io.RawIOBase):
    """A raw stream whose `write` returns only once every byte is written."""

    def __init__(self, raw: Any) -> None:
        super().__init__()
        self._raw = raw

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        fileno: int = self._raw.fileno()
        return fileno

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        written = 0
        while written < len(view):
            count = self._raw.write(view[written:])
            if count is None:  # would block: a WASI stream never says that for stdout
                continue
            written += count
        return written


def _whole(stream: Any) -> Any:
    raw = getattr(stream, "buffer", None)
    if not isinstance(stream, io.TextIOWrapper) or not isinstance(raw, io.FileIO):
        return stream  # not the wrapper described above: leave it alone
    return io.TextIOWrapper(
        _WholeWrites(raw),
        encoding=stream.encoding,
        errors=stream.errors,
        line_buffering=stream.line_buffering,
        write_through=True,
    )


def install() -> None:
    """Replace a guest's `sys.stdout` and `sys.stderr` (nothing happens outside WASI)."""
    if sys.platform != "wasi":
        return
    sys.stdout = _whole(sys.stdout)
    sys.stderr = _whole(sys.stderr)
