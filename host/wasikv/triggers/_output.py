"""What trigger guests print: one log record per line, named by component.

Every trigger (HTTP, key-value watch) captures its guests' stdout and
stderr and hands them here, so a guest's output lands in the same place
whichever trigger ran it: under `wasikv up` the server's log (see
`wasikv.serve`), elsewhere the `wasikv` logger's usual handlers.
"""

from __future__ import annotations

import logging

#: The logger of guest output: stdout lines at INFO, stderr lines at WARNING.
GUEST_LOGGER = "wasikv.guest"

log = logging.getLogger(GUEST_LOGGER)


def log_guest_output(name: str, stdout: bytes, stderr: bytes) -> None:
    """Log each line a guest named `name` printed as `[name] line` (stdout at INFO, stderr at WARNING)."""
    for output, level in ((stdout, logging.INFO), (stderr, logging.WARNING)):
        if output and log.isEnabledFor(level):
            for line in output.decode("utf-8", "replace").rstrip().splitlines():
                log.log(level, "[%s] %s", name, line)
