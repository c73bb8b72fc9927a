"""Reading the files an operator names (manifests, configs, components, values) without surprises.

A path on a command line or in a config can name anything: a FIFO (opening
one for reading blocks until somebody writes), a device (`/dev/zero` never
ends), a directory, or a regular file far larger than anything wasikv
should hold in memory. `read_regular_file` reads only regular files, never
blocks on opening one, and stops at a size cap, with one error that names
the file, what was wrong and the cap.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from typing import BinaryIO

from .errors import ConfigError

__all__ = ["describe_size", "file_kind", "read_regular_file", "read_stream"]

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_CHUNK = 1 << 20


def read_regular_file(
    path: str | os.PathLike[str],
    max_bytes: int,
    what: str,
    *,
    error: Callable[[str], Exception] = ConfigError,
    missing_hint: str | None = None,
    special_hint: str | None = None,
) -> bytes:
    """The bytes of the regular file `path`, if it holds at most `max_bytes`.

    `what` names the file in messages ("runtime config", "component"). Any
    other kind of file (directory, FIFO, socket, device), a file larger than
    `max_bytes`, or one that cannot be read raises `error(message)`, the
    message starting with the path; `missing_hint` says what to do about a
    missing file, `special_hint` about one that is not a regular file. A
    FIFO is refused without waiting for a writer: the file is checked
    before it is opened, and opened non-blocking.
    """
    shown = os.fspath(path)
    try:
        _check_kind(shown, os.stat(shown).st_mode, what, error, special_hint)
        fd = os.open(shown, _OPEN_FLAGS)
    except FileNotFoundError:
        raise error(f"{shown}: no such file" + (f"; {missing_hint}" if missing_hint else "")) from None
    except OSError as exc:
        raise error(f"{shown}: cannot read the {what}: {exc.strerror or exc}") from None
    try:
        # Checked again on what was opened: the path may have changed since.
        info = os.fstat(fd)
        _check_kind(shown, info.st_mode, what, error, special_hint)
        if info.st_size > max_bytes:
            raise error(f"{shown}: the {what} is {describe_size(info.st_size)}, {_over(max_bytes)}")
        with os.fdopen(fd, "rb", buffering=0, closefd=False) as file:
            data = read_stream(file, max_bytes)
    except OSError as exc:
        raise error(f"{shown}: cannot read the {what}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if data is None:
        # st_size was small (a file in /proc, or one still being written).
        raise error(f"{shown}: the {what} holds {_over(max_bytes)}")
    return data


def read_stream(stream: BinaryIO, max_bytes: int) -> bytes | None:
    """Everything `stream` holds until its end, or None as soon as it holds more than `max_bytes`."""
    chunks: list[bytes] = []
    size = 0
    while size <= max_bytes:
        chunk = stream.read(min(_CHUNK, max_bytes + 1 - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
    return None


def file_kind(mode: int) -> str:
    """What an `st_mode` is, for messages: "a directory", "a FIFO", "a device", ..."""
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISLNK(mode):  # from lstat
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def describe_size(size: int) -> str:
    """`size` bytes for messages: "3145728 bytes (3.0 MiB)"."""
    for shift, unit in ((30, "GiB"), (20, "MiB"), (10, "KiB")):
        if size >> shift:
            return f"{size} bytes ({size / (1 << shift):.1f} {unit})"
    return "1 byte" if size == 1 else f"{size} bytes"


def _check_kind(
    shown: str, mode: int, what: str, error: Callable[[str], Exception], hint: str | None
) -> None:
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        problem = f"is a directory; name the {what} itself"
    else:
        problem = f"is {file_kind(mode)}, not a regular file; the {what} must be a regular file"
    raise error(f"{shown}: {problem}" + (f"; {hint}" if hint else ""))


def _over(max_bytes: int) -> str:
    return f"more than the limit of {describe_size(max_bytes)}"
