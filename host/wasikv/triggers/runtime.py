"""The runtime face of a trigger kind: the WIT its components target, and how an app runs it.

Each kind's entry in `wasikv.app.triggers.TRIGGER_KINDS` points at one
`TriggerRuntime` (imported on first use, so reading a manifest loads no
wasmtime). `wasikv.asgi.WasikvApp` prepares every kind's triggers when it is
built, starts them at start-up and stops them on close; `wasikv inspect`
checks a component against every kind's world.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..app.loader import LoadedApp
from ..host import Host
from ._exports import TriggerExport

__all__ = ["Prepare", "TriggerExport", "TriggerRuntime", "TriggerService"]


class TriggerService(Protocol):
    """An app's triggers of one kind, checked and ready: started with the app, stopped when it closes."""

    def start(self) -> None:
        """Begin invoking components (returns once running)."""
        ...

    def stop(self) -> None:
        """Stop invoking components and wait for calls in progress."""
        ...


class Prepare(Protocol):
    """Checks and readies an app's triggers of one kind on `host`.

    `timeout` is how long one call into a component may run (None: no
    limit). Raises `ComponentError` for a component that cannot serve the
    trigger, before anything starts.
    """

    def __call__(self, loaded: LoadedApp, host: Host, *, timeout: float | None) -> TriggerService: ...


@dataclass(frozen=True)
class TriggerRuntime:
    """How one kind of trigger runs.

    Its components have one of `exports` (wasikv's own first; HTTP also
    takes Spin-style `incoming-handler` components); `prepare` readies an
    app's triggers of the kind.
    """

    exports: tuple[TriggerExport, ...]
    prepare: Prepare
