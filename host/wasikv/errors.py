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


class LimitExceeded(StoreError):
    """A configured limit (key size, value size, batch size, open handles) was hit."""


# Kept as a name of its own: store URL problems are configuration errors.
InvalidStoreUrl = ConfigError
