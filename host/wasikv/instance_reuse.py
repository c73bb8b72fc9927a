"""`InstanceReuse`: whether and how long a component's instances serve more than one request.

A fresh instance per request costs two things wasmtime-py cannot trim: a
memory reset and an instantiation, most of a simple request's CPU. A
component's `instance_reuse` in `wasikv.toml` (or
`create_app(instance_reuse=...)`) lets its trigger keep an instance after a
request and give it the next one instead
(`wasikv.triggers.reused_instances`). The trade is isolation: module
globals persist between the requests one instance serves, so what one
request leaves behind is visible to the next on that instance.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigError


@dataclass(frozen=True)
class InstanceReuse:
    """How a component's instances are reused (`instance_reuse` in `wasikv.toml`).

    An instance serves at most `max_requests` requests, waits at most
    `idle_seconds` for the next one, and may grow its linear memory to
    `max_memory_bytes` (None: the host's `Limits.max_memory_bytes`); at
    most `max_idle` instances of the component wait for requests at once
    (more are freed as they finish).
    """

    max_requests: int = 128
    idle_seconds: float = 10.0
    max_memory_bytes: int | None = None
    max_idle: int = 16

    def __post_init__(self) -> None:
        for name in ("max_requests", "max_idle"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(
                    f"instance reuse: {name} must be a whole number of at least 1, not {value!r}"
                )
        idle = self.idle_seconds
        if isinstance(idle, bool) or not isinstance(idle, (int, float)) or not 0 < idle <= 86400:
            raise ConfigError(
                f"instance reuse: idle_seconds must be a number of seconds above 0 and at most 86400, "
                f"not {idle!r}"
            )
        memory = self.max_memory_bytes
        if memory is not None and (
            isinstance(memory, bool) or not isinstance(memory, int) or memory < 1 << 16
        ):
            raise ConfigError(
                f"instance reuse: max_memory_bytes must be at least 65536 (one wasm page), not {memory!r}"
            )


__all__ = ["InstanceReuse"]
