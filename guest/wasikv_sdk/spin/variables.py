"""`spin_sdk.variables`: the component's application variables, through `wasikv_sdk.variables`."""

from __future__ import annotations

__all__ = ["get"]


def get(key: str) -> str:
    """The value of the component's variable `key` (its `[component.NAME.variables]` entry).

    Raises `wasikv_sdk.errors.NoSuchVariable` when the component has no such
    variable, `VariableError` when the host cannot read it.
    """
    # Imported here: the bindings exist only inside a component, and this
    # module is also imported by host-side tools and tests.
    from .. import variables

    return variables.get(key)
