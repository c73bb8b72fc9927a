"""What trigger guests print: kept up to a bound, logged one record per line, named by component.

Every trigger (HTTP, key-value watch) captures its guests' stdout and
stderr in a `CapturedOutput` each, which keeps the first
`Limits.max_output_bytes` and only counts the rest, so host memory stays
bounded whatever a guest prints. It hands them here, so a guest's output
lands in the same place whichever trigger ran it: under `wasikv up` the
server's log (see `wasikv.server.serve`), elsewhere the `wasikv` logger's usual
handlers. Control characters in what is logged are escaped (`\\x1b`), so a
guest can neither repaint a terminal nor forge a log line.
"""

from __future__ import annotations

import functools
import io
import logging
import re
from pathlib import Path

from ..errors import ConfigError
from ..limits import MAX_COMPONENT_BYTES
from ..runtime.guest_errors import GuestStderr, python_path_of
from ..safe_files import read_regular_file

#: The logger of guest output: stdout lines at INFO, stderr lines at WARNING.
GUEST_LOGGER = "wasikv.guest"

log = logging.getLogger(GUEST_LOGGER)


class CapturedOutput:
    """One output stream of a guest instance: its first `limit` bytes, and how many more it wrote.

    Its `write` is what `Host.instantiate` calls with each chunk the guest
    writes; every chunk is reported written, so a guest that prints too
    much carries on (until its deadline) rather than failing on a write.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"an output limit must be at least 1 byte, not {limit}")
        #: The most bytes kept.
        self.limit = limit
        #: The bytes written past `limit`, counted and dropped.
        self.dropped = 0
        self._kept = bytearray()

    def write(self, data: bytes) -> int:
        """Keep what still fits of `data`, count the rest; always `len(data)` (all of it taken)."""
        # wasmtime calls this from one thread per stream, holding the GIL:
        # no two writes to one stream overlap.
        room = self.limit - len(self._kept)  # never negative
        if len(data) <= room:
            self._kept += data
        else:
            self._kept += memoryview(data)[:room]
            self.dropped += len(data) - room
        return len(data)

    def getvalue(self) -> bytes:
        """The bytes kept (at most `limit`)."""
        return bytes(self._kept)

    @property
    def written(self) -> int:
        """Every byte the guest wrote, kept or dropped."""
        return len(self._kept) + self.dropped


# Characters that move a terminal's cursor, change its state or break a log
# line: C0 (but tab) and DEL, C1, the Unicode line and paragraph separators and
# the bidirectional controls that reorder how a line reads.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def _escaped(char: re.Match[str]) -> str:
    code = ord(char.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(line: str) -> str:
    """`line` with every control character written as an escape (`\\x1b`, `\\x00`, `\\u202e`); tabs kept."""
    return _CONTROL.sub(_escaped, line)


def log_guest_output(
    name: str, stdout: CapturedOutput, stderr: CapturedOutput, origin: str | None = None
) -> None:
    """Log each line a guest named `name` printed as `[name] line` (stdout at INFO, stderr at WARNING).

    Lines end at LF (a CR before it is dropped); control characters within
    them are escaped, bytes that are not UTF-8 shown as `\\xff`. A stream
    cut at its limit ends with a WARNING that says how much was dropped. A
    traceback on stderr is told with the app's own file names when the
    component at `origin` records them (see `wasikv.runtime.guest_errors`); the
    panic message componentize-py adds after it shows only at DEBUG.
    """
    err = stderr.getvalue()
    if b"Traceback (most recent call last):" in err or b"panicked at" in err:
        told = io.BytesIO()
        verbose = log.isEnabledFor(logging.DEBUG) or logging.getLogger("wasikv").isEnabledFor(logging.DEBUG)
        filtered = GuestStderr(told, lambda: _python_path(origin), verbose=verbose)
        filtered.write(err)
        filtered.flush()
        err = told.getvalue()
    for stream, output, captured, level in (
        ("stdout", stdout.getvalue(), stdout, logging.INFO),
        ("stderr", err, stderr, logging.WARNING),
    ):
        text = output.decode("utf-8", "backslashreplace").rstrip() if log.isEnabledFor(level) else ""
        for line in text.split("\n") if text else ():
            log.log(level, "[%s] %s", name, printable(line.removesuffix("\r")))
        if captured.dropped:
            log.warning(
                "[%s] %s output truncated after %d bytes (%d more dropped; the limit is max_output_bytes)",
                name,
                stream,
                captured.limit,
                captured.dropped,
            )


class GuestOutput:
    """One instance's stdout and stderr, captured, then logged once with `log_guest_output`.

    A trigger calls `log` as soon as the guest's call has returned, before
    it hands the answer on, so that what the guest printed is logged before
    what the server logs about that answer (a request's access line); and
    again when the instance is gone, for a call that failed (then only the
    first call logs).
    """

    def __init__(self, name: str, limit: int, origin: str | None = None) -> None:
        self.name = name
        self.origin = origin
        self.stdout = CapturedOutput(limit)
        self.stderr = CapturedOutput(limit)
        self._logged = False

    def log(self) -> None:
        """Log what the guest printed, unless that was done already."""
        if not self._logged:
            self._logged = True
            log_guest_output(self.name, self.stdout, self.stderr, self.origin)


@functools.lru_cache(maxsize=64)
def _python_path(origin: str | None) -> list[Path] | None:
    if origin is None:
        return None
    try:
        return python_path_of(read_regular_file(origin, MAX_COMPONENT_BYTES, "component"))
    except ConfigError:
        return None
