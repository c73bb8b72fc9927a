"""What a build reports: a `BuildResult` per component, or `BuildFailed`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import WasikvError

__all__ = ["BuildFailed", "BuildResult"]


@dataclass(frozen=True)
class BuildResult:
    """What happened to one component: `built` (in `seconds`) or `up-to-date`."""

    component: str
    status: Literal["built", "up-to-date"]
    seconds: float


class BuildFailed(WasikvError):
    """A component could not be built.

    `output` is what its command printed (stdout and stderr, interleaved) and
    `returncode` its exit status (negative: killed by that signal; None: the
    command did not run, or succeeded without writing the component's source).
    """

    def __init__(
        self, component: str, command: str, message: str, output: str = "", returncode: int | None = None
    ) -> None:
        super().__init__(message)
        self.component = component
        self.command = command
        self.output = output
        self.returncode = returncode
