"""Every Python WASI function body, by (interface base name, function name): one table for the linker."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import cli, clocks, filesystem, io, sockets
from .http import BODIES as HTTP_BODIES
from .state import Unavailable

#: The bodies of every interface the Python WASI layer implements.
BODIES: dict[tuple[str, str], Callable[..., Any] | Unavailable] = {
    **io.BODIES,
    **clocks.BODIES,
    **cli.BODIES,
    **filesystem.BODIES,
    **sockets.BODIES,
    **HTTP_BODIES,
}

__all__ = ["BODIES"]
