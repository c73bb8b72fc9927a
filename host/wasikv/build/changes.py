"""Which components changed while an app runs: the file watching of `wasikv up --watch`.

A component with a build section changed when the hash of its build inputs
(`inputs.input_digest`: the files its `watch` globs match, its command) is
not the one last seen; a component without one changed when its source
file's bytes did. The built sources themselves, hidden directories (the
manifest's `.wasikv/` among them), `__pycache__`, `node_modules` and
virtualenvs are never watched, so a build cannot set off another one.

File events come from `watchfiles` (inotify, FSEvents, ...; set
`WATCHFILES_FORCE_POLLING=1` where they do not arrive, as on some network
and container file systems). A burst of events is one batch: a batch ends
when `QUIET_MS` pass without another event, or `BATCH_MS` after its first.
Only then are hashes compared, so an editor's save (a temporary file, a
rename) or a "save all" is one rebuild.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import watchfiles

from ..app.manifest import AppManifest, ComponentSpec
from .globs import is_skipped_dir, literal_root
from .inputs import input_digest

__all__ = ["BATCH_MS", "QUIET_MS", "Changes", "InputWatcher"]

#: A batch of file events ends once this many milliseconds pass without another...
QUIET_MS = 300
#: ...or this many after its first event.
BATCH_MS = 1600


@dataclass(frozen=True)
class Changes:
    """What one batch of file events changed: `components` in manifest order, and the manifest."""

    components: tuple[str, ...]
    manifest: bool


class InputWatcher:
    """Follows the files an app's components are built from (or loaded from, without a build).

    What it has seen is fixed when it is made: make it before the first
    build, so an edit saved while that build runs counts as a change.
    """

    def __init__(self, manifest: AppManifest) -> None:
        self.manifest = manifest
        self._specs = list(manifest.components.values())
        self._outputs = [os.path.normpath(spec.source) for spec in self._specs if spec.build is not None]
        self._seen = {spec.name: self._state(spec) for spec in self._specs}
        self._manifest_seen = _file_digest(manifest.path)
        self._roots = _roots(manifest)

    def roots(self) -> list[Path]:
        """The directories to watch (each existing one once, none inside another)."""
        return [Path(root) for root in self._roots]

    def relevant(self, _change: object, path: str) -> bool:
        """Whether an event on `path` may change a component (a `watchfiles` filter)."""
        path = os.path.normpath(path)
        # A build writes its source (or a temporary file beside it): never a change of its own.
        if any(path == output or path.startswith(output + ".") for output in self._outputs):
            return False
        root = next((root for root in self._roots if _inside(path, root)), None)
        if root is None:
            return True
        current = root
        for part in Path(os.path.relpath(path, root)).parts[:-1]:
            if is_skipped_dir(current, part):
                return False
            current = os.path.join(current, part)
        return True

    def changed(self) -> Changes:
        """The components whose inputs (or sources) differ from what was seen last, which become seen."""
        names = []
        for spec in self._specs:
            state = self._state(spec)
            if state != self._seen[spec.name]:
                self._seen[spec.name] = state
                names.append(spec.name)
        manifest = _file_digest(self.manifest.path)
        manifest_changed = manifest != self._manifest_seen
        self._manifest_seen = manifest
        return Changes(tuple(names), manifest_changed)

    def batches(self, stop: threading.Event) -> Iterator[Changes]:
        """Each batch of file events that changed something, until `stop` is set."""
        roots = self.roots()
        for _ in watchfiles.watch(
            *roots,
            watch_filter=self.relevant,
            debounce=BATCH_MS,
            step=QUIET_MS,
            stop_event=stop,
            rust_timeout=500,
            raise_interrupt=False,
        ):
            changes = self.changed()
            if changes.components or changes.manifest:
                yield changes

    def _state(self, spec: ComponentSpec) -> str:
        if spec.build is None:
            return _file_digest(spec.source)
        return input_digest(spec, exclude=[Path(output) for output in self._outputs])


def _roots(manifest: AppManifest) -> list[str]:
    """The existing directories holding the manifest, the build inputs and the unbuilt sources, none twice."""
    found: set[str] = {os.path.normpath(manifest.path.parent)}
    for spec in manifest.components.values():
        if spec.build is None:
            found.add(os.path.normpath(spec.source.parent))
            continue
        found.add(os.path.normpath(spec.build.workdir))
        for pattern in spec.build.watch:
            root = literal_root(str(spec.build.workdir), pattern)
            found.add(os.path.dirname(root) if os.path.isfile(root) else root)  # a file: its directory
    existing = sorted(path for path in found if os.path.isdir(path))
    return [
        path for path in existing if not any(other != path and _inside(path, other) for other in existing)
    ]


def _inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def _file_digest(path: Path) -> str:
    """The SHA-256 of a file's bytes ("" if it cannot be read)."""
    try:
        with path.open("rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest()
    except OSError:
        return ""
