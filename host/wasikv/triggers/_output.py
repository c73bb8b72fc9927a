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

import logging
import re

from ..runtime.guest_traps import GUEST_LOGGER

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


def log_guest_output(name: str, stdout: CapturedOutput, stderr: CapturedOutput) -> None:
    """Log each line a guest named `name` printed as `[name] line` (stdout at INFO, stderr at WARNING).

    Lines end at LF (a CR before it is dropped); control characters within
    them are escaped, bytes that are not UTF-8 shown as `\\xff`. A stream
    cut at its limit ends with a WARNING that says how much was dropped.
    Tracebacks on stderr come as `Host.instantiate` passed them on: with
    the app's own file names and source lines, and the panic message
    componentize-py adds after an uncaught exception only at DEBUG.
    """
    GuestOutput(name, stdout, stderr).log()


class GuestOutput:
    """One instance's stdout and stderr, logged as the guest's calls return (see `log_guest_output`).

    A trigger calls `log` as soon as the guest's call has returned, before
    it hands the answer on, so that what the guest printed is logged before
    what the server logs about that answer (a request's access line); and
    again when the instance is gone, which logs only what came since (a
    failed call's output, a last line `Host.instantiate` finished at
    teardown).
    """

    def __init__(self, name: str, stdout: CapturedOutput, stderr: CapturedOutput) -> None:
        self.name = name
        self.stdout = stdout
        self.stderr = stderr
        self._logged = {"stdout": 0, "stderr": 0}
        self._told_dropped = {"stdout": False, "stderr": False}

    @classmethod
    def capture(cls, name: str, limit: int) -> GuestOutput:
        """Two fresh `CapturedOutput` of `limit` bytes each, for an instance of `name`."""
        return cls(name, CapturedOutput(limit), CapturedOutput(limit))

    def log(self) -> None:
        """Log the lines printed since the last call, and a stream's truncation once."""
        for stream, captured, level in (
            ("stdout", self.stdout, logging.INFO),
            ("stderr", self.stderr, logging.WARNING),
        ):
            output = captured.getvalue()
            fresh, self._logged[stream] = output[self._logged[stream] :], len(output)
            text = fresh.decode("utf-8", "backslashreplace").rstrip() if log.isEnabledFor(level) else ""
            for line in text.split("\n") if text else ():
                log.log(level, "[%s] %s", self.name, printable(line.removesuffix("\r")))
            if captured.dropped and not self._told_dropped[stream]:
                self._told_dropped[stream] = True
                log.warning(
                    "[%s] %s output truncated after %d bytes "
                    "(%d more dropped; the limit is max_output_bytes)",
                    self.name,
                    stream,
                    captured.limit,
                    captured.dropped,
                )


__all__ = ["GUEST_LOGGER", "CapturedOutput", "GuestOutput", "log_guest_output", "printable"]
