"""`wasi:config/store@0.2.0-draft-2024-09-27`: a component's variables, as Spin 3 serves them.

Each instance's context is the mapping of its variables (component variable
keys to resolved values, see `wasikv.app.variables`); a component given none
sees none. As in Spin, `get` of a key the component does not define is
`ok(none)`, never an error. Values are never logged or put in error strings:
they may be secrets.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from ..capability import Capability, InstanceSpec
from ..runtime.codec import Case
from ..runtime.host_functions import HostFunction, HostInterface, Param
from ..runtime.wit_types import STRING, ListOf, OptionOf, ResultOf, TupleOf, VariantOf
from .spin import VARIABLES as SPIN_VARIABLES

log = logging.getLogger("wasikv")

#: The interface's name, as components import it.
NAME = "wasi:config/store@0.2.0-draft-2024-09-27"

#: `wasi:config/store.error`.
ERROR = VariantOf((("upstream", STRING), ("io", STRING)), name="error")


def config_error(exc: Exception) -> Case:
    """The `error` value for an exception raised while serving a call (a host bug)."""
    # The exception text could quote a value: only its type reaches the guest and the log.
    log.error("unexpected error in a wasi:config call: %s", type(exc).__name__)
    return Case("io", f"internal error: {type(exc).__name__}")


def get(variables: Mapping[str, str], key: str) -> str | None:
    """The value of `key`, or None when the component has no such variable."""
    return variables.get(key)


def get_all(variables: Mapping[str, str]) -> list[tuple[str, str]]:
    """Every variable of the component, sorted by key."""
    return sorted(variables.items())


_PAIRS = ListOf(TupleOf((STRING, STRING)))

STORE = HostInterface(
    NAME,
    (
        HostFunction("get", (Param("key", STRING),), ResultOf(OptionOf(STRING), ERROR), get, config_error),
        HostFunction("get-all", (), ResultOf(_PAIRS, ERROR), get_all, config_error),
    ),
)


class Variables(Capability):
    """`wasi:config/store` and Spin's variables: each instance reads the variables of its `InstanceSpec`."""

    name = "variables"
    interfaces = (STORE, *SPIN_VARIABLES)

    def make_state(self, spec: InstanceSpec) -> Mapping[str, str]:
        return spec.variables


__all__ = ["ERROR", "NAME", "STORE", "Variables", "config_error", "get", "get_all"]
