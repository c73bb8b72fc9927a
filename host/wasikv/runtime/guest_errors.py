"""Guest errors told in terms of the guest's own Python code.

componentize-py bundles each directory of its Python path (`-p`) under
`/0/`, `/1/`, ... in the order given, so guest tracebacks name `/1/app.py`.
`componentize` records those directories in a custom section of the
component (`PATHS_SECTION`), and the tracebacks of guests built that way are
shown with the real file names and source lines. Build failures lose
componentize-py's own launcher frames and gain a hint for the usual
mistakes; a guest's uncaught exception at run time loses the panic message
of componentize-py's runtime.
"""

from __future__ import annotations

import difflib
import json
import re
import threading
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

#: The component custom section that lists the guest's Python path, as JSON.
PATHS_SECTION = "wasikv:python-path"

# The proxy worlds export wasi:http/incoming-handler: either SDK handler becomes its class.
_PROXY_CLASS = (
    "IncomingHandler = http.incoming_handler(App), App an http.Handler subclass"
    " (or class IncomingHandler(http.IncomingHandler) with http from wasikv_sdk.spin)"
)

#: The worlds of wit/app.wit a guest is built for, and the class each calls.
WORLD_CLASSES = {
    "wasikv:app/command": ("Run", "class Run(exports.Run) with a run(self) method"),
    "wasikv:app/http-trigger": ("Http", "class Http(http.Handler) with a handle(self, request) method"),
    "wasikv:app/spin-http": (
        "IncomingHandler",
        "class IncomingHandler(http.IncomingHandler) with a handle_request(self, request) method"
        " (http from wasikv_sdk.spin)",
    ),
    "wasikv:app/proxy": ("IncomingHandler", _PROXY_CLASS),
    "wasikv:app/wasi-proxy": ("IncomingHandler", _PROXY_CLASS),
    "wasikv:app/watch-trigger": ("Watcher", "class Watcher(watch.Watcher) with on_set and on_delete methods"),
}

_GUEST_FILE = re.compile(r'^(\s*File ")/(\d+)/([^"]*)(".*)$')
_PANIC = re.compile(r"^thread '.*' (\(\d+\) )?panicked at ")
_NOTE = "note: run with `RUST_BACKTRACE=1`"
# The lines CPython puts between the tracebacks of chained exceptions.
_CHAINED = ("During handling of the above exception", "The above exception was the direct cause")
# What CPython prints for an exception it cannot format (no memory left for
# the traceback: a MemoryError): `_PyObject_Dump`'s fields, then this line.
_DUMP_START = re.compile(r"^object address  : (0x[0-9a-fA-F]+|\(nil\))$")
_DUMP_FIELD = re.compile(r"^object (refcount|type|type name|repr) *: ?(.*)$")
_DUMP_END = "lost sys.stderr"


def custom_section(name: str, payload: bytes) -> bytes:
    """A wasm custom section, which may be appended to a module or a component."""
    encoded = name.encode()
    body = _leb128(len(encoded)) + encoded + payload
    return b"\x00" + _leb128(len(body)) + body


def python_path_of(component: bytes) -> list[Path] | None:
    """The Python path a component was built with, if `componentize` recorded it."""
    if component[:4] != b"\x00asm":
        return None
    offset = 8
    while offset < len(component):
        section_id = component[offset]
        size, offset = _read_leb128(component, offset + 1)
        end = offset + size
        if section_id == 0:
            length, start = _read_leb128(component, offset)
            if component[start : start + length] == PATHS_SECTION.encode():
                try:
                    paths = json.loads(component[start + length : end])
                except (ValueError, RecursionError):  # RecursionError: nested too deeply
                    return None
                if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
                    return None
                return [Path(p) for p in paths]
        offset = end
    return None


def guest_file(path: str, python_path: Sequence[Path] | None) -> Path | None:
    """The source file of a guest path like `/1/app.py`, if known and present."""
    match = re.fullmatch(r"/(\d+)/(.+)", path)
    if match is None or python_path is None or int(match.group(1)) >= len(python_path):
        return None
    candidate = python_path[int(match.group(1))] / match.group(2)
    return candidate if candidate.is_file() else None


def traceback_line(line: str, python_path: Sequence[Path] | None, *, with_source: bool) -> list[str]:
    """A line of a guest traceback with its file name mapped back; then its source line if asked."""
    match = _GUEST_FILE.match(line)
    if match is None:
        return [line]
    found = guest_file(f"/{match.group(2)}/{match.group(3)}", python_path)
    if found is None:
        return [line]
    lines = [f"{match.group(1)}{found}{match.group(4)}"]
    number = re.match(r'", line (\d+)', match.group(4))
    if with_source and number is not None:
        source = found.read_text("utf-8", "replace").splitlines()
        index = int(number.group(1)) - 1
        if 0 <= index < len(source) and source[index].strip():
            lines.append(f"    {source[index].strip()}")
    return lines


def explain_build_failure(
    output: str,
    *,
    app: str,
    module: str,
    world: str,
    python_path: Sequence[Path],
    custom_wit: bool,
) -> str:
    """What a failed componentize-py run means, from its stderr: the app's error and a hint.

    `app` is the app's file as the user named it, for the first line.
    """
    message = _componentize_message(output)
    unresolved = re.search(r"Unable to resolve `Some\(\"(.*)\"\)`", message)
    if unresolved is not None and not custom_wit:
        return f"cannot build {app}: {_unknown_world(unresolved.group(1))}"
    lines: list[str] = []
    for line in message.splitlines():
        lines += traceback_line(line, python_path, with_source=False)
    text = "\n".join(lines).rstrip()
    hint = _build_hint(text.splitlines()[-1] if text else "", module=module, world=world)
    return f"cannot build {app} for {world}:\n{text}" + (f"\nhint: {hint}" if hint else "")


def _componentize_message(output: str) -> str:
    # componentize-py's launcher reports the error as an AssertionError of
    # its own `sys.exit(script())` frame; the message is the app's error.
    marker = "AssertionError: "
    text = output[output.index(marker) + len(marker) :] if marker in output else output
    for end in ("\n\nCaused by:", "\nCaused by:", "\nStack backtrace:", "\nWIT paths:"):
        text = text.partition(end)[0]
    return text.strip("\n")


def _build_hint(last: str, *, module: str, world: str) -> str | None:
    missing = re.fullmatch(rf"AttributeError: module '{re.escape(module)}' has no attribute '(\w+)'", last)
    if missing is not None and world in WORLD_CLASSES:
        name, shape = WORLD_CLASSES[world]
        return f"the world {world} calls the class {name} of {module}.py: define {shape} (see `wasikv new`)"
    foreign = re.fullmatch(r"AttributeError: module 'wasikv_sdk.wit.exports' has no attribute '(\w+)'", last)
    owners = [w for w, (name, _) in WORLD_CLASSES.items() if foreign is not None and name == foreign.group(1)]
    if owners and world in WORLD_CLASSES:
        shape = WORLD_CLASSES[world][1]
        said = f"the world {owners[0]}" if len(owners) == 1 else f"the worlds {', '.join(owners)}"
        return (
            f"exports.{WORLD_CLASSES[owners[0]][0]} is for {said}; "
            f"build for it with -w {owners[0]}, or define {shape} for {world}"
        )
    if re.fullmatch(r"ModuleNotFoundError: No module named 'spin_sdk(\..*)?'", last):
        return (
            "wasikv_sdk.spin has spin_sdk's modules: write `wasikv_sdk.spin` for `spin_sdk` in the imports"
            " (`from wasikv_sdk.spin import http, key_value`) and build with -w wasikv:app/spin-http"
        )
    return None


def _unknown_world(asked: str) -> str:
    names = list(WORLD_CLASSES)
    short = {name.partition("/")[2]: name for name in names}
    message = f"unknown world {asked!r}; wasikv's worlds are {', '.join(names)}"
    if ":" in asked or "/" in asked:
        message += " (its WIT defines other worlds too, which wasikv does not run)"
    close = difflib.get_close_matches(asked, [*names, *short], n=1)
    return message + (f"\nhint: did you mean -w {short.get(close[0], close[0])}?" if close else "")


class Sink(Protocol):
    """Where `GuestStderr` passes a guest's output on (a binary file, a `BytesIO`, ...); `flush` optional."""

    def write(self, data: bytes, /) -> object:
        """Take one chunk."""


class GuestStderr:
    """A guest's stderr, passed on to `target` with its tracebacks told in the app's own terms.

    Guest file names are mapped back with `python_path()` (asked once, at
    the first traceback); componentize-py's panic message after an uncaught
    exception is dropped unless `verbose`. `exception` is the last line of
    the last traceback seen, e.g. `ZeroDivisionError: division by zero`, and
    `traceback` that traceback as passed on (with the exceptions chained to
    it; its last `MAX_TRACEBACK_LINES` lines); `panic` the message of the
    first panic (the line after "panicked at").
    When CPython has no memory left to print a traceback, it prints the
    exception as an object dump ("object address : 0x...", ...): unless
    `verbose`, that is shown as one line naming the exception's type,
    which is then `exception`.
    """

    _MARKERS = ("Traceback (most recent call last):", "thread '", _NOTE, "object address", _DUMP_END)

    #: The most lines of a traceback `traceback` keeps (its last ones).
    MAX_TRACEBACK_LINES = 1000

    def __init__(
        self, target: Sink, python_path: Callable[[], Sequence[Path] | None], *, verbose: bool = False
    ) -> None:
        self.target = target
        self.exception: str | None = None
        self.panic: str | None = None
        self._traceback: deque[str] = deque(maxlen=self.MAX_TRACEBACK_LINES)
        self._chained = False  # a "During handling ..." line: the next traceback continues this one
        self._python_path = python_path
        self._paths: Sequence[Path] | None = None
        self._looked_up = False
        self._verbose = verbose
        self._pending = b""
        self._mid_line = False  # the start of the current line was passed on already
        self._in_traceback = False
        self._in_panic = False
        self._in_dump = False
        self._held = b""  # blank lines after an exception: the panic's, or the guest's own
        self._hold_blanks = False
        self._lock = threading.Lock()

    def write(self, data: bytes) -> int:
        """Take guest output; pass on what is complete (or cannot be part of a traceback)."""
        with self._lock:
            self._pending += data
            *lines, self._pending = self._pending.split(b"\n")
            out = [self._line(line) for line in lines]
            if self._pending and (self._mid_line or not self._maybe_special(self._pending)):
                out.append(self._pending)
                self._pending = b""
                self._mid_line = True
            if out:
                self.target.write(b"".join(out))
                self._flush_target()
        return len(data)

    @property
    def traceback(self) -> str | None:
        """The last traceback the guest printed, as passed on (None: none yet)."""
        return "\n".join(self._traceback) if self._traceback else None

    def flush(self) -> None:
        """Flush the target: what the guest flushed is passed on already, but a line that may
        still turn out to be part of a traceback or a panic (see `finish`)."""
        with self._lock:
            self._flush_target()

    def forget_exception(self) -> None:
        """Forget the last exception, traceback and panic seen: a reused instance starts a new call."""
        with self._lock:
            self.exception = None
            self.panic = None
            self._traceback.clear()
            self._chained = False

    def finish(self) -> None:
        """The guest's output ended: pass on an unfinished last line."""
        with self._lock:
            if self._pending:
                self.target.write(self._line(self._pending).rstrip(b"\n"))
                self._pending = b""
            self.target.write(self._held)
            self._held = b""
            self._flush_target()

    def _flush_target(self) -> None:
        flush = getattr(self.target, "flush", None)  # a `CapturedOutput` has none
        if flush is not None:
            flush()

    def _maybe_special(self, partial: bytes) -> bool:
        if self._in_traceback or self._in_panic or self._in_dump:
            return True
        text = partial.decode("utf-8", "replace")
        return any(marker.startswith(text) or text.startswith(marker) for marker in self._MARKERS)

    def _line(self, raw: bytes) -> bytes:
        if self._hold_blanks and not self._mid_line and not raw.strip():
            self._held += raw + b"\n"
            return b""
        held, self._held, self._hold_blanks = self._held, b"", False
        text = raw.decode("utf-8", "replace")
        panic = not (self._mid_line or self._in_traceback or self._in_panic) and _PANIC.match(text)
        out = self._passed(raw)
        # The blank line between a traceback and the panic is the panic's.
        return out if panic and not self._verbose else held + out

    def _passed(self, raw: bytes) -> bytes:
        if self._mid_line:
            self._mid_line = False
            return raw + b"\n"
        line = raw.decode("utf-8", "replace")
        if self._in_panic or (not self._in_traceback and _PANIC.match(line)):
            if self._in_panic and self.panic is None:
                self.panic = line
            self._in_panic = not line.startswith(_NOTE)
            return raw + b"\n" if self._verbose else b""
        dumped = self._dumped(line)
        if dumped is not None:
            return raw + b"\n" if self._verbose else dumped
        if line.startswith("Traceback (most recent call last):"):
            self._in_traceback = True
            if not self._chained:
                self._traceback.clear()
            self._chained = False
            self._traceback.append(line)
            return raw + b"\n"
        if not self._in_traceback:
            if self._traceback and line.startswith(_CHAINED):
                self._chained = True
                self._traceback.extend(("", line, ""))
            return raw + b"\n"
        if line[:1].isspace():
            if not self._looked_up:
                self._paths, self._looked_up = self._python_path(), True
            told = traceback_line(line, self._paths, with_source=True)
            self._traceback.extend(told)
            return "".join(f"{part}\n" for part in told).encode()
        if line.strip():
            self.exception = line
            self._traceback.append(line)
            self._in_traceback = line.startswith("During handling") or line.startswith("The above exception")
            self._hold_blanks = not self._in_traceback
        return raw + b"\n"

    def _dumped(self, line: str) -> bytes | None:
        """What to show for a line of CPython's object dump (None: the line is not one)."""
        if _DUMP_START.match(line):
            self._in_dump, self._in_traceback = True, False
            return b""
        field = _DUMP_FIELD.match(line) if self._in_dump else None
        if field is not None:
            if field.group(1) != "type name":
                return b""
            self.exception = field.group(2).strip()
            why = (
                "no memory was left to print"
                if self.exception == "MemoryError"
                else "CPython could not print"
            )
            said = f"{self.exception} ({why} its traceback)"
            self._traceback.clear()
            self._traceback.append(said)
            return f"{said}\n".encode()
        if self._in_dump and line == _DUMP_END:
            # The end of the dump: blank lines after it are the panic's.
            self._in_dump, self._hold_blanks = False, True
            return b""
        self._in_dump = False
        return None


def _leb128(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_leb128(data: bytes, offset: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[offset]
        offset += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, offset
