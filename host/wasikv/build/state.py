"""The build state, `.wasikv/build-state.json`: what was built from which inputs.

For each component built successfully it keeps the hash of its inputs
(`inputs.input_digest`), its command and its source. A state file that is
missing, unreadable or of another version counts as empty: everything
builds again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..app.manifest import AppManifest

__all__ = ["STATE_FILE", "BuildState", "load_state", "save_state", "state_path"]

#: The build state's file name, in `.wasikv/` next to the manifest.
STATE_FILE = "build-state.json"
_STATE_VERSION = 1

#: Component name -> {"digest", "command", "source"} of its last successful build.
BuildState = dict[str, dict[str, str]]


def state_path(manifest: AppManifest) -> Path:
    """Where `manifest`'s build state is kept."""
    return manifest.state_dir / STATE_FILE


def load_state(path: Path) -> BuildState:
    """The build state at `path`; empty if there is none, or none this version can read."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError, RecursionError):  # RecursionError: nested too deeply
        return {}
    if not isinstance(data, dict) or data.get("version") != _STATE_VERSION:
        return {}
    components = data.get("components")
    if not isinstance(components, dict):
        return {}
    return {name: entry for name, entry in components.items() if isinstance(entry, dict)}


def save_state(path: Path, components: BuildState) -> None:
    """Write the build state to `path` atomically, creating its directory (git-ignored) if needed."""
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Like pytest's and ruff's caches: never committed by accident.
        (path.parent / ".gitignore").write_text("# Created by wasikv.\n*\n", "utf-8")
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps({"version": _STATE_VERSION, "components": components}, indent=2), "utf-8")
    partial.replace(path)
