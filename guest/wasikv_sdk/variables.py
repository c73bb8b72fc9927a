"""The component's application variables, read through `wasi:config/store` (as Spin 3 serves them).

Guest-only: it imports the generated bindings
(`wasikv_sdk.wit.imports.wasi_config_store`). The names a component reads
are the keys of its `[component.NAME.variables]` table in `wasikv.toml`;
their values are resolved by the host from the app's `[variables]` when it
starts (see "Application variables" in docs/reference/manifest.md)::

    from wasikv_sdk import variables

    url = variables.get("api_url")            # NoSuchVariable if not defined
    everything = variables.get_all()          # {"api_url": "...", ...}

Like `spin_sdk.variables.get`, `get` returns the value as a string and
raises for a variable the component does not have; the exception here is
`wasikv_sdk.errors.NoSuchVariable` (a `VariableError`), and any error the
host reports is a `VariableError` carrying its message.
"""

from __future__ import annotations

from typing import Any

from componentize_py_types import Err

from .errors import NoSuchVariable, VariableError
from .wit.imports import wasi_config_store as config

__all__ = ["NoSuchVariable", "VariableError", "get", "get_all"]


def _translate(error: Any) -> VariableError:
    """The SDK exception for a `wasi:config/store.error` value."""
    if isinstance(error, config.Error_Upstream):
        return VariableError(f"variable provider failed: {error.value}")
    if isinstance(error, config.Error_Io):
        return VariableError(f"reading variables failed: {error.value}")
    return VariableError(f"unexpected error from the host: {error!r}")


def get(name: str) -> str:
    """The value of variable `name`.

    Raises `NoSuchVariable` if the component has no variable `name`, and
    `VariableError` if the host fails to read it.
    """
    try:
        value: str | None = config.get(name)
    except Err as err:
        raise _translate(err.value) from None
    if value is None:
        raise NoSuchVariable(f"no variable named {name!r} is defined for this component")
    return value


def get_all() -> dict[str, str]:
    """Every variable of the component, by name (empty when it has none).

    Raises `VariableError` if the host fails to read them.
    """
    try:
        return dict(config.get_all())
    except Err as err:
        raise _translate(err.value) from None
