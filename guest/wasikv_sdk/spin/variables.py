"""`spin_sdk.variables`: the component's application variables, through `wasikv_sdk.variables`.

Guest-only, like `wasikv_sdk.variables`: it imports the generated bindings.
"""

from __future__ import annotations

from .. import variables as _variables

__all__ = ["get"]


def get(key: str) -> str:
    """The value of the component's variable `key` (its `[component.NAME.variables]` entry).

    Raises `wasikv_sdk.errors.NoSuchVariable` when the component has no such
    variable, `VariableError` when the host cannot read it.
    """
    return _variables.get(key)
