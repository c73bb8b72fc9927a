"""The trigger kinds wasikv runs: each manifest kind paired with its runtime, in one table.

`TRIGGERS` holds one `RegisteredTrigger` per entry of
`wasikv.app.triggers.TRIGGER_KINDS`, in the same order: the kind (how the
manifest reads, checks and describes `[[trigger.NAME]]`) and its
`TriggerRuntime` (the WIT its components export, and what an app starts).
The pairing lives here, on the runtime side, so that `wasikv.app` never
imports `wasikv.triggers` and reading a manifest loads no wasmtime.

Adding a kind: its manifest spec in `wasikv.app.triggers` (an entry of
`TRIGGER_KINDS`), its runtime under `wasikv.triggers`, and one entry here.
Code that needs one kind's prepared triggers asks `PreparedTriggers` with
that kind's entry (`triggers[HTTP]` is an `HttpRoutes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from ..app import triggers as kinds
from ..app.loader import LoadedApp
from ..app.triggers import TriggerKind
from ..host import Host
from .http_app import HTTP_RUNTIME, HttpRoutes
from .runtime import TriggerRuntime, TriggerService
from .watch.app import WATCH_RUNTIME, WatchTriggers

__all__ = ["HTTP", "KEY_VALUE", "TRIGGERS", "PreparedTriggers", "RegisteredTrigger"]

_S = TypeVar("_S", bound=TriggerService)


@dataclass(frozen=True)
class RegisteredTrigger(Generic[_S]):
    """One trigger kind wasikv runs: its manifest `kind` and its `runtime`, which prepares an `_S`."""

    kind: TriggerKind[Any]
    runtime: TriggerRuntime[_S]


#: `[[trigger.http]]`: the ASGI app routes requests to its components.
HTTP: RegisteredTrigger[HttpRoutes] = RegisteredTrigger(kinds.HTTP, HTTP_RUNTIME)
#: `[[trigger.key-value]]`: watch runners call its components after committed writes.
KEY_VALUE: RegisteredTrigger[WatchTriggers] = RegisteredTrigger(kinds.KEY_VALUE, WATCH_RUNTIME)

#: Every kind, in `TRIGGER_KINDS` order: triggers are prepared and started in this order.
TRIGGERS: tuple[RegisteredTrigger[Any], ...] = (HTTP, KEY_VALUE)


class PreparedTriggers:
    """An app's triggers of every kind in `TRIGGERS`, prepared on one host.

    `triggers[HTTP]` is the app's `HttpRoutes` and `triggers[KEY_VALUE]` its
    `WatchTriggers`: typed by the entry asked with. `items()` gives each
    entry and its service, in table order.
    """

    def __init__(self, loaded: LoadedApp, host: Host, *, timeout: float | None) -> None:
        """Prepare every kind's triggers of `loaded` on `host` (see `wasikv.triggers.runtime.Prepare`)."""
        self._services: dict[str, TriggerService] = {
            entry.kind.name: entry.runtime.prepare(loaded, host, timeout=timeout) for entry in TRIGGERS
        }

    def __getitem__(self, entry: RegisteredTrigger[_S]) -> _S:
        # Only `__init__` fills the dict, each name with its own entry's `prepare`: an `_S`.
        return cast(_S, self._services[entry.kind.name])

    def items(self) -> list[tuple[RegisteredTrigger[Any], TriggerService]]:
        """Each kind's entry and its prepared triggers, in `TRIGGERS` order."""
        return [(entry, self._services[entry.kind.name]) for entry in TRIGGERS]

    def values(self) -> list[TriggerService]:
        """Each kind's prepared triggers, in `TRIGGERS` order."""
        return [service for _, service in self.items()]
