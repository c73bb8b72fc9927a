"""Each instance's handle table: the host objects behind the resource handles a guest holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...runtime._capi import GuestFault
from .state import WasiInstance

#: The most handles one instance may hold at once: a guest that leaks
#: handles in a loop traps instead of growing host memory without bound.
MAX_HANDLES = 100_000


class HandleTable:
    """Host objects by rep. `add` a new one, `get` a borrowed one, `take` an owned one back."""

    def __init__(self, limit: int = MAX_HANDLES) -> None:
        self._objects: dict[int, Any] = {}
        self._next = 1
        self._limit = limit

    def __len__(self) -> int:
        return len(self._objects)

    def add(self, value: Any) -> int:
        """Hold `value` for the guest; its new rep."""
        if len(self._objects) >= self._limit:
            raise GuestFault(f"the guest holds {self._limit} resource handles, the most wasikv allows")
        rep = self._next
        self._next += 1
        self._objects[rep] = value
        return rep

    def get(self, rep: int) -> Any:
        """The object behind a borrowed handle."""
        try:
            return self._objects[rep]
        except KeyError:
            raise GuestFault(f"unknown resource handle {rep}") from None

    def take(self, rep: int) -> Any:
        """The object behind an owned handle passed to the host, which now owns it."""
        try:
            return self._objects.pop(rep)
        except KeyError:
            raise GuestFault(f"unknown resource handle {rep}") from None

    def drop(self, rep: int) -> None:
        """The guest dropped its handle: forget the object and tell it (`on_drop`, which may trap)."""
        value = self._objects.pop(rep, None)
        on_drop = getattr(value, "on_drop", None)
        if on_drop is not None:
            on_drop()

    def close(self) -> None:
        """Forget every object (the instance is gone); objects are told, errors ignored."""
        objects, self._objects = self._objects, {}
        for value in objects.values():
            on_close = getattr(value, "on_instance_closed", None)
            if on_close is not None:
                try:
                    on_close()
                except Exception:  # the instance is gone: nothing to report to
                    pass


@dataclass
class WasiState:
    """One instance's Python WASI state: what its functions share, and its handles."""

    instance: WasiInstance
    table: HandleTable = field(default_factory=HandleTable)


__all__ = ["MAX_HANDLES", "HandleTable", "WasiState"]
