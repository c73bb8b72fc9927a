"""The `wasikv` command's entry point: loads the command line, and a Ctrl-C meanwhile exits 130.

Loading the command line takes a moment (click, then whatever a command
needs); a Ctrl-C in that moment used to print a Python traceback. Once the
command line runs, its group (`wasikv.cli.main.main`) turns a Ctrl-C that no
command handles into exit 130 as well, not click's "Aborted!" and 1.
"""

from __future__ import annotations

import sys

from .exit_status import EXIT_INTERRUPTED

__all__ = ["main"]


def main() -> None:
    """Run the `wasikv` command line (`wasikv.cli.main.main`)."""
    try:
        from .main import main as command_line

        # Also where click's own handling does not reach (before and after it parses).
        command_line()
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
