"""A component's build inputs: the files its watch globs match, and their hash.

The hash covers the build command, workdir, watch globs and the watched
files' contents, plus the versions of wasikv (its SDK) and componentize-py,
so an upgrade rebuilds. A component's source is never its own input.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Collection
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from ..app.manifest import BuildSpec, ComponentSpec
from .globs import expand

__all__ = ["input_digest", "watched_files"]


def watched_files(build: BuildSpec, exclude: Collection[Path] = ()) -> list[Path]:
    """The files `build.watch` matches, sorted, less `exclude`."""
    excluded = {os.path.normpath(path) for path in exclude}
    found: set[str] = set()
    for pattern in build.watch:
        found.update(expand(str(build.workdir), pattern))
    return [Path(path) for path in sorted(found - excluded)]


def input_digest(spec: ComponentSpec, *, exclude: Collection[Path] = ()) -> str:
    """The hash of a component's build inputs: its command, workdir, watch globs and watched files.

    The versions of wasikv (its SDK) and componentize-py count too, so an
    upgrade rebuilds. The component's source, and the paths in `exclude`,
    are never inputs.
    """
    build = spec.build
    if build is None:
        raise ValueError(f"component {spec.name!r} has no build section")
    digest = hashlib.sha256()
    header = {
        "command": build.command,
        "workdir": str(build.workdir),
        "watch": list(build.watch),
        "toolchain": [_version("wasikv"), _version("componentize-py")],
    }
    digest.update(json.dumps(header, sort_keys=True).encode())
    for path in watched_files(build, exclude=[spec.source, *exclude]):
        digest.update(os.path.relpath(path, build.workdir).encode("utf-8", "surrogateescape") + b"\0")
        try:
            with path.open("rb") as file:
                digest.update(hashlib.file_digest(file, "sha256").digest())
        except OSError:
            digest.update(b"(unreadable)")
    return digest.hexdigest()


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"
