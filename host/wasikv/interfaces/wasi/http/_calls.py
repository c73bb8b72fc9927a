"""How a resource method's body calls the Python method of the same meaning."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..state import WasiInstance

__all__ = ["method_body"]


def method_body(name: str) -> Callable[..., Any]:
    """The body of a `[method]` function: `obj.<name>(*args)` (the instance is not needed)."""

    def body(_instance: WasiInstance, obj: Any, *args: Any) -> Any:
        return getattr(obj, name)(*args)

    body.__name__ = name
    return body
