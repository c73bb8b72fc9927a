"""Reading the app's TOML files, with errors that name the file, the line and the column."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..limits import MAX_CONFIG_FILE_BYTES
from ..safe_files import read_regular_file

_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_AT_END = re.compile(r"\s*\(at end of document\)\s*$")


def read_text(path: Path, error: type[ConfigError], what: str, missing_hint: str) -> str:
    """The UTF-8 text of `path`; `error` (naming the file) if it is missing, unreadable, not a
    regular file or larger than `MAX_CONFIG_FILE_BYTES`."""
    data = read_regular_file(path, MAX_CONFIG_FILE_BYTES, what, error=error, missing_hint=missing_hint)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise error(f"{path}, line {line}: not valid UTF-8; save the file as UTF-8") from None


def parse_toml(text: str, shown: str, error: type[ConfigError]) -> dict[str, Any]:
    """Parse TOML; a syntax error becomes `error` naming `shown`, the line and the column.

    Arrays or inline tables nested past what the parser can follow (it
    recurses: a few hundred levels) are an `error` too, not a `RecursionError`.
    """
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise error(
            f"{shown}: invalid TOML: arrays or inline tables nested too deeply (one inside another, "
            "hundreds of levels down); a manifest or runtime config needs only a few levels"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        where = shown
        if (found := _AT.search(message)) is not None:
            message = message[: found.start()]
            where = f"{shown}, line {found.group(1)}, column {found.group(2)}"
        elif (found := _AT_END.search(message)) is not None:
            message = message[: found.start()]
            where = f"{shown}, line {max(len(text.splitlines()), 1)} (the end of the file)"
        hint = ""
        if message.startswith(("Cannot declare", "Cannot overwrite")):
            hint = "; each table and key may appear only once"
        raise error(f"{where}: invalid TOML: {message}{hint}") from None


def toml_key(name: str) -> str:
    """A key as it must be written in a TOML table header."""
    if re.fullmatch(r"[A-Za-z0-9_-]+", name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def kind_of(value: object) -> str:
    """What a TOML value is, for messages: "a string", "an array", ..."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return "a date/time"
