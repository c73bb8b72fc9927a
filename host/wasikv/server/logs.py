"""Where the lines of a served app go: its requests, what its guests print, its deliveries to watchers.

They are standard `logging` records: `wasikv.access` (one line per
request), `wasikv.guest` (what guests print: stdout at INFO, stderr at
WARNING), `wasikv.watch.deliveries` (one line per batch delivered to a
watcher) and `wasikv.rebuild` (what `wasikv up --watch` rebuilds). `wasikv
up` sends them to stderr, timestamped. An app served by
another server (`create_app` under uvicorn) does the same when it starts,
unless the service has configured logging for them (a handler on them or on
an ancestor, such as `logging.basicConfig`): then they go where it says.
"""

from __future__ import annotations

import logging

from ..triggers._output import GUEST_LOGGER
from ..triggers.watch.runner import DELIVERY_LOGGER

__all__ = ["REBUILD_LOGGER", "SERVER_LOGGERS", "log_to_stderr"]

#: The logger of what watch mode does (`wasikv up --watch`, `wasikv.server.watch_mode`).
REBUILD_LOGGER = "wasikv.rebuild"

#: The loggers of a served app's lines, at INFO.
SERVER_LOGGERS = ("wasikv.access", GUEST_LOGGER, DELIVERY_LOGGER, REBUILD_LOGGER)


def log_to_stderr(*, unless_configured: bool = False) -> None:
    """Send the `SERVER_LOGGERS` (at INFO) to one timestamped stderr handler.

    Each logger with a handler of its own keeps it. With `unless_configured`
    (an embedded app), nothing changes for a logger whose records some
    handler already takes (its own or an ancestor's, the root's included);
    otherwise the loggers stop passing their records on to their ancestors.
    """
    handler: logging.Handler | None = None
    for name in SERVER_LOGGERS:
        logger = logging.getLogger(name)
        if logger.handlers or (unless_configured and logger.hasHandlers()):
            continue
        if handler is None:
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        logger.addHandler(handler)
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)
        if not unless_configured:
            logger.propagate = False
