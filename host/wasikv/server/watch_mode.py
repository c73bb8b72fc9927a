"""`wasikv up --watch`: rebuild the components whose files changed and swap them into the running app.

A `Rebuilder` runs beside the server on a thread of its own. For each batch
of changes (see `wasikv.build.changes`) it takes the changed components in
manifest order: it runs the build command of one with a build section
(`wasikv.build.build_app`, which keeps the build state as `wasikv build`
does), then compiles the new source and puts it in place in every trigger
that runs it (`WasikvApp.replace_component`). Requests and watcher batches
in progress finish on the old version; the ones that begin after the swap
run on the new one. A build or compile that fails leaves the old version
serving, and its error is logged; the next change tries again.

Everything is logged on the `wasikv.rebuild` logger (which `wasikv up`
prints, timestamped, to stderr):

    rebuilding 'notes': its files changed
    rebuilt 'notes' in 3.2 s (build 2.1 s, compile 1.1 s)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from rich.console import Console

from ..app.manifest import AppManifest
from ..build import BuildFailed, build_app
from ..build.changes import Changes, InputWatcher
from ..errors import WasikvError
from .asgi import WasikvApp
from .logs import REBUILD_LOGGER

__all__ = ["REBUILD_LOGGER", "Rebuilder"]

log = logging.getLogger(REBUILD_LOGGER)

#: Seconds `stop` waits for a rebuild in progress (its build command runs on).
_STOP_WAIT = 1.0


class Rebuilder:
    """Rebuilds and swaps in the components of `app` whose files change, until stopped.

    `watcher` must have been made before the app's first build (see
    `InputWatcher`), from the manifest `app` was loaded from.
    """

    def __init__(self, app: WasikvApp, watcher: InputWatcher) -> None:
        self.app = app
        self.watcher = watcher
        self.manifest: AppManifest = watcher.manifest
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Begin watching (returns at once) and say what is watched."""
        roots = ", ".join(str(root) for root in self.watcher.roots())
        log.info("watching %s for changes", roots)
        # A daemon: an exit never waits for a build command.
        self._thread = threading.Thread(target=self._run, name="wasikv-rebuild", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching; a rebuild in progress is left to end on its own (nothing is swapped after)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(_STOP_WAIT)
            self._thread = None

    def _run(self) -> None:
        try:
            for changes in self.watcher.batches(self._stop):
                try:
                    self.apply(changes)
                except Exception as exc:  # unforeseen: say so, serve on, and keep watching
                    log.error(
                        "rebuilding failed: %s: %s; still serving the previous version",
                        type(exc).__name__,
                        exc,
                    )
        except Exception as exc:  # the file watching itself failed: serve on, say why watching ended
            log.error("watch mode stopped: %s: %s", type(exc).__name__, exc)

    def apply(self, changes: Changes) -> None:
        """Rebuild and swap in each changed component, in manifest order (each one alone)."""
        if changes.manifest:
            log.warning(
                "%s changed: watch mode rebuilds components only; restart `wasikv up` to apply it",
                self.manifest.path.name,
            )
        for name in changes.components:
            if self._stop.is_set():
                return
            self.rebuild(name)

    def rebuild(self, name: str) -> bool:
        """Build (if it has a build section), compile and swap in component `name`; False if it failed.

        A failure is logged, with what the build command printed; the old
        version goes on serving.
        """
        spec = self.manifest.components[name]
        started = time.monotonic()
        built = 0.0
        if spec.build is not None:
            log.info("rebuilding %r: its files changed", name)
            try:
                # The build's own display is not shown: this logs its outcome.
                build_app(self.manifest, components=[name], console=Console(quiet=True), quiet=True)
            except BuildFailed as failure:
                log.error("%s; still serving the previous version%s", failure, _output(failure))
                return False
            except WasikvError as exc:
                log.error("component %r was not rebuilt: %s; still serving the previous version", name, exc)
                return False
            built = time.monotonic() - started
            if self._stop.is_set():
                return False  # the server is stopping: nothing to swap into
        else:
            log.info("reloading %r: %s changed", name, spec.source.name)
        loading = time.monotonic()
        try:
            self.app.replace_component(name, spec.source)
        except WasikvError as exc:
            log.error("%s; still serving the previous version", exc)
            return False
        done = time.monotonic()
        if spec.build is not None:
            log.info(
                "rebuilt %r in %.1f s (build %.1f s, compile %.1f s)",
                name,
                done - started,
                built,
                done - loading,
            )
        else:
            log.info("reloaded %r in %.1f s (compile %.1f s)", name, done - started, done - loading)
        return True


def _output(failure: BuildFailed) -> str:
    """What the failed build command printed, as lines to append to the log line ("" if nothing)."""
    lines: Sequence[str] = failure.output.rstrip("\n").splitlines()
    if not lines:
        return ""
    return ". Its output:\n" + "\n".join(f"  {line}" for line in lines)
