"""The progress display of `wasikv build`: one line per component, and a failed command's output.

On a terminal the lines form a live table (a spinner and the elapsed time
while a component builds); elsewhere (a pipe, a log, a dumb terminal) each
change is printed as a plain `name: status` line. The command line shows the
live table on stderr and keeps the plain lines for a stdout that is not a
terminal.
"""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from .results import BuildFailed

__all__ = ["Display", "show_output"]

_STYLES = {"waiting": "dim", "up-to-date": "green", "done": "green", "failed": "red", "skipped": "dim"}
_ICONS = {"waiting": "·", "up-to-date": "✓", "done": "✓", "failed": "✗", "skipped": "·"}


class Display:
    """One line per component: a live table on a terminal, a line per change elsewhere.

    A component's state is one of `waiting`, `building`, `up-to-date`,
    `done`, `failed` and `skipped`; its text is what the line says. The live
    table goes to `live_console` when given (else to `console` if it is a
    terminal); plain lines go to `console` unless the table is already there.
    `quiet` shows no live table and no `building` lines, only outcomes.
    """

    def __init__(
        self,
        console: Console,
        names: list[str],
        *,
        live_console: Console | None = None,
        quiet: bool = False,
    ) -> None:
        self.console = console
        self.quiet = quiet
        self.names = names
        self.width = max((len(name) for name in names), default=0)
        self.states: dict[str, tuple[str, str]] = {name: ("waiting", "waiting") for name in names}
        self.started: dict[str, float] = {}
        self.spinners = {name: Spinner("dots", style="cyan") for name in names}
        self.live: Live | None = None
        target = live_console or console
        if target.is_terminal and not target.is_dumb_terminal and not quiet:
            self.live = Live(get_renderable=self._render, console=target, refresh_per_second=8)
        self.plain = self.live is None or not console.is_terminal

    def __enter__(self) -> Display:
        if self.live is not None:
            self.live.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """End the live table (if any), leaving its last state on screen; idempotent."""
        if self.live is not None:
            self.live.stop()
            self.live = None

    def update(self, name: str, state: str, text: str) -> None:
        """Show component `name` in `state`, saying `text`."""
        if state == "building":
            self.started[name] = time.monotonic()
        self.states[name] = (state, text)
        if self.live is not None:
            self.live.refresh()
        if self.plain and not (self.quiet and state == "building"):
            self.console.print(f"{name}: {text}", soft_wrap=True, markup=False, highlight=False, emoji=False)

    def note(self, text: str) -> None:
        """Print one line about the build (above the live table, if there is one)."""
        target = self.live.console if self.live is not None else self.console
        target.print(text, soft_wrap=True, markup=False, highlight=False, emoji=False)

    def _render(self) -> RenderableType:
        table = Table.grid(padding=(0, 1))
        for name in self.names:
            state, text = self.states[name]
            if state == "building":
                elapsed = time.monotonic() - self.started.get(name, time.monotonic())
                icon: RenderableType = self.spinners[name]
                status = Text(f"{text} ({elapsed:.1f} s)", style="cyan")
            else:
                icon = Text(_ICONS.get(state, " "), style=_STYLES.get(state, ""))
                status = Text(text, style=_STYLES.get(state, ""))
            table.add_row(icon, Text(name.ljust(self.width), style="bold"), status)
        return table


def show_output(console: Console, failure: BuildFailed) -> None:
    """Print what the failed build command printed (or that it printed nothing)."""
    if not failure.output:
        if failure.returncode is not None:
            console.print("(the build command printed nothing)", markup=False, highlight=False)
        return
    console.print(
        f"output of `{failure.command}` (component {failure.component}):",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    console.print(Text.from_ansi(failure.output.rstrip("\n")), soft_wrap=True, highlight=False)
