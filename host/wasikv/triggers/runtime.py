"""The runtime face of a trigger kind: the WIT its components target, and how an app runs it.

`wasikv.triggers.registry.TRIGGERS` pairs each kind of
`wasikv.app.triggers.TRIGGER_KINDS` with one `TriggerRuntime`.
`wasikv.server.asgi.WasikvApp` prepares every kind's triggers when it is built,
starts them at start-up, swaps a component's new version in while they run
(`up --watch`) and stops them on close; `wasikv inspect` checks a component
against every kind's world.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from wasmtime.component import Component

from ..app.loader import LoadedApp
from ..host import Host
from ._exports import TriggerExport

__all__ = ["Prepare", "Swap", "TriggerExport", "TriggerRuntime", "TriggerService"]

#: Puts a checked new version of a component in place (see `TriggerService.swap`).
Swap = Callable[[], None]


class TriggerService(Protocol):
    """An app's triggers of one kind, checked and ready: started with the app, stopped when it closes."""

    def start(self) -> None:
        """Begin invoking components (returns once running)."""
        ...

    def stop(self) -> None:
        """Stop invoking components and wait for calls in progress."""
        ...

    def swap(self, name: str, component: Component) -> Swap | None:
        """Check `component` as the new version of component `name` in these triggers.

        Returns what puts it in place (calls that begin after it get the new
        version; calls in progress finish on the old one), or None if none of
        these triggers runs `name`. Raises `ComponentError`, changing
        nothing, if `component` cannot serve them.
        """
        ...


_S = TypeVar("_S", bound=TriggerService)
_S_co = TypeVar("_S_co", bound=TriggerService, covariant=True)


class Prepare(Protocol[_S_co]):
    """Checks and readies an app's triggers of one kind on `host`.

    `timeout` is how long one call into a component may run (None: no
    limit). Raises `ComponentError` for a component that cannot serve the
    trigger, before anything starts.
    """

    def __call__(self, loaded: LoadedApp, host: Host, *, timeout: float | None) -> _S_co: ...


@dataclass(frozen=True)
class TriggerRuntime(Generic[_S]):
    """How one kind of trigger runs.

    Its components have one of `exports` (wasikv's own first; HTTP also
    takes Spin-style `incoming-handler` components); `prepare` readies an
    app's triggers of the kind as an `_S` (`HttpRoutes`, `WatchTriggers`).
    """

    exports: tuple[TriggerExport, ...]
    prepare: Prepare[_S]
