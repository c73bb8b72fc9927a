"""`spin_sdk.variables`: application variables, through `wasikv_sdk.variables`."""

from __future__ import annotations

import importlib

__all__ = ["get"]

_PROVIDER = "wasikv_sdk.variables"


def get(key: str) -> str:
    """The value of the application variable `key`.

    Raises:
        NotImplementedError: this wasikv_sdk has no `wasikv_sdk.variables`
            (application variables through wasi:config) yet.
        Whatever `wasikv_sdk.variables.get` raises for an undefined or
            invalid name.
    """
    try:
        provider = importlib.import_module(_PROVIDER)
    except ModuleNotFoundError as exc:
        if exc.name != _PROVIDER:
            raise
        raise NotImplementedError(
            f"variables.get({key!r}): this wasikv_sdk has no application variables yet"
            " (they arrive as wasikv_sdk.variables, over wasi:config)"
        ) from None
    value: str = provider.get(key)
    return value
