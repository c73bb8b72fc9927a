"""The exceptions wasikv raises to host code.

Key-value errors are the SDK's own classes, so the same `except` clauses work
in guests and in host-side Python code.
"""

from __future__ import annotations

from wasikv_sdk.errors import AccessDenied, CasConflict, KeyValueError, NoSuchStore, StoreError

__all__ = [
    "AccessDenied",
    "CasConflict",
    "ComponentError",
    "ConfigError",
    "CorruptPosition",
    "GuestInterrupted",
    "GuestTimeout",
    "GuestTrap",
    "KeyValueError",
    "LimitExceeded",
    "NoSuchStore",
    "StoreError",
    "WasikvError",
]


class WasikvError(Exception):
    """Base class of host configuration and component errors."""


class ConfigError(WasikvError):
    """A store URL, label, grant or limit is invalid."""


class ComponentError(WasikvError):
    """A component could not be loaded, linked or run."""


class GuestTrap(ComponentError):
    """The component trapped (a wasm trap or a failed host call).

    The message is one line; `detail` is wasmtime's whole report when it
    said more (its wasm backtrace), for verbose output. When the trap is a
    Python guest's uncaught exception, the message names it (`component
    trapped: the guest raised ZeroDivisionError: division by zero`) and
    `guest_exception_type` is its type as the guest named it
    (`ZeroDivisionError`, `wasikv_sdk.errors.AccessDenied`), `guest_message`
    its message (may be empty) and `guest_traceback` the traceback the guest
    printed, with the app's own file names and source lines where its
    component records them; all three are None for any other trap.
    """

    def __init__(
        self,
        message: str,
        detail: str | None = None,
        *,
        guest_exception_type: str | None = None,
        guest_message: str | None = None,
        guest_traceback: str | None = None,
    ) -> None:
        super().__init__(message)
        self.detail = detail
        self.guest_exception_type = guest_exception_type
        self.guest_message = guest_message
        self.guest_traceback = guest_traceback


def trap_cause(text: str) -> str:
    """The cause of a wasmtime error in one line, without its wasm backtrace."""
    head, _, cause = text.partition("Caused by:")
    lines = [line.strip() for line in (cause or head).splitlines() if line.strip()]
    return lines[-1] if cause and lines else (lines[0] if lines else "unknown error")


class GuestTimeout(GuestTrap):
    """The component ran past its deadline and was stopped; `timeout` is the limit in seconds.

    `blocked`: it was inside a host call that cannot be interrupted (a
    sleep), so it was given up on and left running on its own thread.
    """

    def __init__(self, message: str, timeout: float | None = None, *, blocked: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout
        self.blocked = blocked


class GuestInterrupted(GuestTrap):
    """The component was stopped because its host is shutting down or it was cancelled."""


class LimitExceeded(StoreError):
    """A configured limit (key size, value size, batch size, open handles) was hit."""


class CorruptPosition(StoreError):
    """A change-feed position read back from a store is not a change number (written around wasikv)."""


# Kept as a name of its own: store URL problems are configuration errors.
InvalidStoreUrl = ConfigError
