"""What trigger guests print: one log record per line, named by component.

Every trigger (HTTP, key-value watch) captures its guests' stdout and
stderr and hands them here, so a guest's output lands in the same place
whichever trigger ran it: under `wasikv up` the server's log (see
`wasikv.serve`), elsewhere the `wasikv` logger's usual handlers.
"""

from __future__ import annotations

import functools
import io
import logging
from pathlib import Path

from ..errors import ConfigError
from ..guest_errors import GuestStderr, python_path_of
from ..limits import MAX_COMPONENT_BYTES
from ..safe_files import read_regular_file

#: The logger of guest output: stdout lines at INFO, stderr lines at WARNING.
GUEST_LOGGER = "wasikv.guest"

log = logging.getLogger(GUEST_LOGGER)


def log_guest_output(name: str, stdout: bytes, stderr: bytes, origin: str | None = None) -> None:
    """Log each line a guest named `name` printed as `[name] line` (stdout at INFO, stderr at WARNING).

    A traceback on stderr is told with the app's own file names when the
    component at `origin` records them (see `wasikv.guest_errors`); the
    panic message componentize-py adds after it shows only at DEBUG.
    """
    if b"Traceback (most recent call last):" in stderr or b"panicked at" in stderr:
        told = io.BytesIO()
        verbose = log.isEnabledFor(logging.DEBUG) or logging.getLogger("wasikv").isEnabledFor(logging.DEBUG)
        filtered = GuestStderr(told, lambda: _python_path(origin), verbose=verbose)
        filtered.write(stderr)
        filtered.flush()
        stderr = told.getvalue()
    for output, level in ((stdout, logging.INFO), (stderr, logging.WARNING)):
        if output and log.isEnabledFor(level):
            for line in output.decode("utf-8", "replace").rstrip().splitlines():
                log.log(level, "[%s] %s", name, line)


@functools.lru_cache(maxsize=64)
def _python_path(origin: str | None) -> list[Path] | None:
    if origin is None:
        return None
    try:
        return python_path_of(read_regular_file(origin, MAX_COMPONENT_BYTES, "component"))
    except ConfigError:
        return None
