"""The manifest's `build.watch` patterns, translated to the files they match.

A pattern is relative to the build's workdir (or absolute) and uses `/`
between segments: `*` and `?` match within one segment, `[...]` (`[!...]`
negated) one character of a set, and a `**` segment any number of
directories. A pattern naming a directory stands for everything in it.
Hidden directories, `__pycache__`, `node_modules` and virtualenvs are never
searched.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

__all__ = ["expand", "is_skipped_dir", "literal_root"]

_GLOB_CHARS = frozenset("*?[")


def expand(workdir: str, pattern: str) -> Iterator[str]:
    """The files `pattern` (relative to `workdir` unless absolute) matches, in no particular order."""
    root, segments = _split(workdir, pattern)
    if not segments:
        if os.path.isfile(root):
            yield root
            return
        segments = ["**"]  # a directory stands for everything in it
    if not os.path.isdir(root):
        return
    yield from _walk(root, segments)


def literal_root(workdir: str, pattern: str) -> str:
    """The directory `pattern` searches: its leading segments without glob characters, from `workdir`.

    For a pattern naming a file or directory, that path itself.
    """
    return _split(workdir, pattern)[0]


def _split(workdir: str, pattern: str) -> tuple[str, list[str]]:
    """`pattern` as (the directory named by its literal leading segments, the glob segments after it)."""
    segments = [s for s in pattern.replace(os.sep, "/").split("/") if s not in ("", ".")]
    literal: list[str] = []
    while segments and not _GLOB_CHARS.intersection(segments[0]):
        literal.append(segments.pop(0))
    return os.path.normpath(os.path.join("/" if pattern.startswith("/") else workdir, *literal)), segments


def _walk(root: str, segments: list[str]) -> Iterator[str]:
    """The files under `root` whose path relative to it matches the glob `segments`."""
    regex = _glob_regex(segments)
    max_depth = None if "**" in segments else len(segments) - 1
    for dirpath, dirnames, filenames in os.walk(root):
        relative = os.path.relpath(dirpath, root)
        depth = 0 if relative == "." else relative.count(os.sep) + 1
        if max_depth is not None and depth >= max_depth:
            dirnames[:] = []
        else:
            dirnames[:] = [d for d in dirnames if not is_skipped_dir(dirpath, d)]
        prefix = "" if relative == "." else relative.replace(os.sep, "/") + "/"
        for name in filenames:
            if regex.fullmatch(prefix + name):
                yield os.path.join(dirpath, name)


def is_skipped_dir(parent: str, name: str) -> bool:
    """Whether directory `name` in `parent` is never searched: hidden, `__pycache__`, `node_modules`,
    or a virtualenv."""
    if name.startswith(".") or name in ("__pycache__", "node_modules"):
        return True
    return os.path.exists(os.path.join(parent, name, "pyvenv.cfg"))


def _glob_regex(segments: list[str]) -> re.Pattern[str]:
    parts: list[str] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            parts.append(".+" if last else "(?:[^/]+/)*")
        else:
            parts.append(_segment_regex(segment) + ("" if last else "/"))
    return re.compile("".join(parts))


def _segment_regex(segment: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(segment):
        char = segment[i]
        if char == "*":
            if not out or out[-1] != "[^/]*":
                out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            start = i + 1
            negated = segment[start : start + 1] in ("!", "^")
            if negated:
                start += 1
            end = segment.find("]", start + 1)
            if end < 0:
                out.append(re.escape(char))
            else:
                body = segment[start:end].replace("\\", "\\\\")
                out.append(f"[^/{body}]" if negated else f"[{body}]")
                i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)
