"""Where a trigger's position lives: its name in the store, and migrating old cursor files."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import stat
from pathlib import Path

from ...errors import ConfigError
from ...safe_files import file_kind
from ...stores.base import S64_MAX

log = logging.getLogger("wasikv.watch")


#: Where wasikv used to keep cursor files, under an application's state directory.
CURSOR_DIR = "watch"
#: The largest old cursor file that is read (they hold a few short fields).
OLD_CURSOR_MAX_BYTES = 4096
# Longer position names are replaced by a digest (stores take a few hundred bytes).
_MAX_POSITION_NAME = 256


def position_name(app: str, component: str, prefix: str) -> str:
    """The name a trigger's position is saved under in its store: one per (application, component, prefix).

    A JSON list, so that it is unambiguous and readable in `sqlite3` or
    `redis-cli`; a name longer than 256 bytes becomes `sha256:<hex digest>`.
    """
    name = json.dumps([app, component, prefix], ensure_ascii=False, separators=(",", ":"))
    encoded = name.encode("utf-8")
    if len(encoded) > _MAX_POSITION_NAME:
        return "sha256:" + hashlib.sha256(encoded).hexdigest()
    return name


def cursor_path(state_dir: Path, component: str, store_label: str, store_url: str, prefix: str) -> Path:
    """Where wasikv used to keep the cursor of one trigger (read once, to migrate it into the store)."""
    digest = hashlib.sha256(f"{component}\0{store_url}\0{prefix}".encode()).hexdigest()[:12]
    return state_dir / CURSOR_DIR / f"{_slug(component)}.{_slug(store_label)}.{digest}.json"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text)[:40] or "_"


def read_old_cursor(path: Path) -> int | None:
    """The cursor in an old cursor file; None if there is no file.

    Never blocks: the file is opened non-blocking and anything but a regular
    file of at most `OLD_CURSOR_MAX_BYTES` holding a JSON object with a
    non-negative int `cursor` raises `ConfigError` (naming the file and what
    to do) without being read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise _old_cursor_error(path, f"cannot be opened ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _old_cursor_error(path, f"is {file_kind(info.st_mode)}, not a regular file")
        if info.st_size > OLD_CURSOR_MAX_BYTES:
            raise _old_cursor_error(path, f"is {info.st_size} bytes, more than a cursor file holds")
        chunks: list[bytes] = []
        size = 0
        while size <= OLD_CURSOR_MAX_BYTES:
            chunk = os.read(fd, OLD_CURSOR_MAX_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise _old_cursor_error(path, f"cannot be read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    if size > OLD_CURSOR_MAX_BYTES:
        raise _old_cursor_error(path, "grew past the size of a cursor file while being read")
    try:
        document = json.loads(b"".join(chunks).decode("utf-8"))
    except (ValueError, RecursionError):  # RecursionError: nested too deeply
        raise _old_cursor_error(path, "is not valid JSON") from None
    cursor = document.get("cursor") if isinstance(document, dict) else None
    if type(cursor) is not int or not 0 <= cursor <= S64_MAX:
        shown = repr(cursor)[:40]
        raise _old_cursor_error(path, f"holds no valid cursor (a non-negative integer), but {shown}")
    return cursor


def _old_cursor_error(path: Path, problem: str) -> ConfigError:
    return ConfigError(
        f"old watch cursor file {path} {problem}. Delete it to start this trigger from the store's "
        "newest change (changes written while wasikv was stopped are then not delivered), or make it "
        'a JSON file holding {"cursor": <seq of the last change handled>} to resume after that change'
    )
