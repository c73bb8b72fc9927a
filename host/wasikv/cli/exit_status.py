"""The exit statuses of the `wasikv` command that are not 0, 1 or click's 2.

Its own module, importing nothing, so that the entry point
(`wasikv.cli.launcher`) and the command line (`wasikv.cli.main`) share them without
importing each other.
"""

from __future__ import annotations

__all__ = ["EXIT_INTERRUPTED", "EXIT_TIMEOUT"]

#: The exit status of a command stopped by Ctrl-C, as shells use it.
EXIT_INTERRUPTED = 130

#: The exit status of `run` stopped by --timeout, as `timeout(1)` uses it.
EXIT_TIMEOUT = 124
