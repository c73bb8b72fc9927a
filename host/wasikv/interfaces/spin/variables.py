"""`fermyon:spin/variables@2.0.0`: a component's variables, as Spin 2 and 3 serve them.

What spin-sdk 3.x (`spin_sdk.variables`), Spin's JS SDK
(`@spinframework/spin-variables`) and Spin's Rust SDK 3 to 5
(`spin_sdk::variables`) import. The values are the ones `wasi:config/store`
serves (`InstanceSpec.variables`: the component's keys, resolved); the
errors are Spin's (`spin_expressions::Key::validate` and its resolver):

- a name that breaks Spin's rule is `invalid-name("\\"NAME\\": why")`, checked
  first, whatever the component defines;
- a valid name the component does not define is `undefined`.

Messages quote at most the first 128 characters of a name.

Values are never logged or put in error strings: they may be secrets.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

from ...runtime.codec import Case
from ...runtime.host_functions import HostFunction, HostInterface, Param
from ...runtime.wit_types import STRING, ResultOf, VariantOf

log = logging.getLogger("wasikv")

#: The interface's name, as components import it.
NAME = "fermyon:spin/variables@2.0.0"

#: `fermyon:spin/variables.error`.
ERROR = VariantOf(
    (("invalid-name", STRING), ("undefined", STRING), ("provider", STRING), ("other", STRING)),
    name="error",
)


class InvalidName(ValueError):
    """The name breaks Spin's rule for variable names (`invalid-name`)."""


class Undefined(LookupError):
    """The component defines no variable of that name (`undefined`)."""


def name_problem(name: str) -> str | None:
    """Why Spin refuses `name` as a variable name, in Spin's words; None when it is valid.

    Lower-case ASCII letters, digits and single underscores, starting with a
    letter and ending with a letter or digit.
    """
    if not name:
        return "must not be empty"
    bad = next((c for c in name if not ("a" <= c <= "z" or "0" <= c <= "9" or c == "_")), None)
    if bad is not None:
        return (
            f"invalid character {bad!r}. Variable names may contain only lower-case letters, "
            "numbers, and underscores."
        )
    if not "a" <= name[0] <= "z":
        return "must start with a lowercase ASCII letter"
    if name[-1] == "_":
        return "must end with a lowercase ASCII letter or digit"
    if "__" in name:
        return "must not contain multiple consecutive underscores"
    return None


#: The most characters of a name an error message repeats (the guest chose the name's length).
_SHOWN = 128


def _quoted(name: str) -> str:
    # As Spin quotes names (Rust's `{:?}`): in double quotes, control characters escaped.
    if len(name) > _SHOWN:
        return json.dumps(name[:_SHOWN], ensure_ascii=False) + f"... ({len(name)} characters)"
    return json.dumps(name, ensure_ascii=False)


def get(variables: Mapping[str, str], name: str) -> str:
    """The value of the component's variable `name`; raises `InvalidName` or `Undefined`."""
    problem = name_problem(name)
    if problem is not None:
        raise InvalidName(f"{_quoted(name)}: {problem}")
    value = variables.get(name)
    if value is None:
        raise Undefined(f"no variable for {_quoted(name)}")
    return value


def variables_error(exc: Exception) -> Case:
    """The `error` value for an exception raised while serving a call."""
    if isinstance(exc, InvalidName):
        return Case("invalid-name", str(exc))
    if isinstance(exc, Undefined):
        return Case("undefined", str(exc))
    # A host bug: the exception text could quote a value, so only its type
    # reaches the guest and the log.
    log.error("unexpected error in a fermyon:spin/variables call: %s", type(exc).__name__)
    return Case("other", f"internal error: {type(exc).__name__}")


#: `fermyon:spin/variables@2.0.0`.
V2 = HostInterface(
    NAME,
    (HostFunction("get", (Param("name", STRING),), ResultOf(STRING, ERROR), get, variables_error),),
)

__all__ = ["ERROR", "NAME", "V2", "InvalidName", "Undefined", "get", "name_problem", "variables_error"]
