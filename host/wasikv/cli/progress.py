"""Progress of the command line's long steps on stderr: a spinner with the elapsed time.

Only the commands use this; the library (`Host`, `componentize`) never
prints. A step shows only when stderr is a terminal and `--quiet` was not
given, so pipes, logs and tests see no progress at all. rich is imported
only then: it is 40 ms of start-up that `wasikv run` in a pipe does not need.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from ..runtime.compile_cache import CompileHook

__all__ = ["compile_progress", "progress_console", "step"]


def progress_console(quiet: bool = False) -> Console | None:
    """A console on stderr for progress, or None when `quiet` or stderr is not a terminal."""
    if quiet or not sys.stderr.isatty():
        return None
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal or console.is_dumb_terminal:
        return None
    return console


class _Elapsed:
    """A spinner saying `text... N.N s`, the seconds counted at each refresh."""

    def __init__(self, text: str) -> None:
        from rich.spinner import Spinner

        self.text = text
        self.started = time.monotonic()
        self.spinner = Spinner("dots", style="cyan")

    def seconds(self) -> float:
        return time.monotonic() - self.started

    def __rich__(self) -> RenderableType:
        from rich.text import Text

        self.spinner.update(text=Text(f"{self.text}... {self.seconds():.1f} s", style="cyan"))
        return self.spinner


@contextmanager
def step(console: Console | None, text: str) -> Iterator[None]:
    """Show `text` with a spinner and the elapsed seconds while the block runs (nothing if no console).

    The spinner is replaced by a final `text... N.N s` line, or `text... failed
    after N.N s` if the block raised.
    """
    if console is None:
        yield
        return
    from rich.live import Live

    elapsed = _Elapsed(text)
    live = Live(elapsed, console=console, refresh_per_second=8, transient=True)
    live.start()
    try:
        yield
    except BaseException:
        live.stop()
        console.print(f"{text}... failed after {elapsed.seconds():.1f} s", markup=False, highlight=False)
        raise
    live.stop()
    console.print(f"{text}... {elapsed.seconds():.1f} s", markup=False, highlight=False)


def compile_progress(console: Console | None) -> CompileHook | None:
    """A `Host(on_compile=)` hook showing each first-run compile as a step (None if no console)."""
    if console is None:
        return None
    shown = console

    def on_compile(origin: str) -> AbstractContextManager[object]:
        return step(shown, f"compiling {Path(origin).name} (first run only)")

    return on_compile
