"""Application variables as Spin defines them: declarations, names and `{{ name }}` templates.

```toml
[variables]
greeting = { default = "hello" }
api_key = { required = true, secret = true }

[component.api.variables]
api_key = "{{ api_key }}"                 # what the guest reads: component keys
banner = "{{ greeting }}, world"          # templates over application variables
```

The manifest declares application variables (`[variables]`: exactly one of
`default` or `required = true`, and optionally `secret = true`); each
component gives its own keys, whose values are templates over them. Guests
read only their component's keys (`wasi:config/store`). Where the values of
the application variables come from is `wasikv.app.variable_sources`.

Names follow Spin's rule (`spin_expressions::Key::validate`): lower-case
ASCII letters, digits and single underscores, starting with a letter and
ending with a letter or digit.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from ..errors import ConfigError
from ._toml import kind_of

__all__ = [
    "NAME_RULE",
    "Variable",
    "Variables",
    "expand",
    "name_problem",
    "parse_component_variables",
    "parse_declarations",
    "template_names",
]

#: Spin's rule for variable names, for messages.
NAME_RULE = (
    "names may contain lower-case letters, digits and single underscores, start with a letter "
    "and end with a letter or digit (for example 'api_key')"
)
_DECLARATION_KEYS = ("default", "required", "secret")

#: Raises the manifest's error for (where, problem).
Fail = Callable[[str, str], ConfigError]


@dataclass(frozen=True)
class Variable:
    """`[variables] NAME = {...}`: an application variable; `default` is None when it is required."""

    name: str
    default: str | None = None
    secret: bool = False

    @property
    def required(self) -> bool:
        """Whether start-up needs a value from outside the manifest."""
        return self.default is None

    def __repr__(self) -> str:
        default = "<secret>" if self.secret and self.default is not None else repr(self.default)
        return f"Variable(name={self.name!r}, default={default}, secret={self.secret})"


class Variables(Mapping[str, str]):
    """One component's resolved variables (key to value), whose repr never shows a secret's value."""

    def __init__(self, values: Mapping[str, str], secret: frozenset[str] = frozenset()) -> None:
        self._values = dict(values)
        #: The keys whose values come (in part) from a secret application variable.
        self.secret = secret

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{key!r}: {'<secret>' if key in self.secret else repr(value)}"
            for key, value in self._values.items()
        )
        return f"Variables({{{shown}}})"


def name_problem(name: str) -> str | None:
    """Why `name` is not a valid variable name (Spin's rule), or None when it is."""
    if not name:
        return "it is empty"
    bad = next((c for c in name if not ("a" <= c <= "z" or "0" <= c <= "9" or c == "_")), None)
    if bad is not None:
        return f"it contains {bad!r}"
    if not ("a" <= name[0] <= "z"):
        return "it does not start with a lower-case letter"
    if name.endswith("_"):
        return "it ends with '_'"
    if "__" in name:
        return "it contains '__'"
    return None


def template_names(template: str) -> list[str]:
    """The variable names a `{{ name }}` template refers to, in order; `ValueError` if it is malformed."""
    names: list[str] = []
    rest = template
    while (start := rest.find("{{")) >= 0:
        end = rest.find("}}", start + 2)
        if end < 0:
            raise ValueError("it has a '{{' without a closing '}}'")
        names.append(rest[start + 2 : end].strip())
        rest = rest[end + 2 :]
    return names


def expand(template: str, values: Mapping[str, str]) -> str:
    """`template` with each `{{ name }}` replaced by `values[name]` (names already checked)."""
    return re.sub(r"\{\{(.*?)\}\}", lambda match: values[match.group(1).strip()], template, flags=re.DOTALL)


def parse_declarations(value: object, fail: Fail) -> dict[str, Variable]:
    """The top-level `[variables]` table, checked; mistakes are `fail(where, problem)`."""
    where = "[variables]"
    if not isinstance(value, dict):
        raise fail(where, 'must be a table: write [variables] followed by name = { default = "x" }')
    declared: dict[str, Variable] = {}
    for name, body in value.items():
        declared[name] = _declaration(name, body, where, fail)
    return declared


def _declaration(name: str, body: object, where: str, fail: Fail) -> Variable:
    problem = name_problem(name)
    if problem is not None:
        raise fail(where, f"variable name {name!r} is invalid: {problem}; {NAME_RULE}")
    shape = f'write {name} = {{ default = "value" }} or {name} = {{ required = true }}'
    if not isinstance(body, dict):
        raise fail(where, f"variable {name!r} must be a table, not {kind_of(body)}; {shape}")
    for key in body:
        if key not in _DECLARATION_KEYS:
            close = difflib.get_close_matches(key, _DECLARATION_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise fail(
                where,
                f"variable {name!r} has unknown key {key!r}{hint}; "
                f"allowed keys: {', '.join(_DECLARATION_KEYS)}",
            )
    default = body.get("default")
    if default is not None and not isinstance(default, str):
        raise fail(where, f"variable {name!r}: 'default' must be a string, not {kind_of(default)}; quote it")
    for flag in ("required", "secret"):
        if flag in body and not isinstance(body[flag], bool):
            raise fail(where, f"variable {name!r}: {flag!r} must be true or false, not {kind_of(body[flag])}")
    required = bool(body.get("required", False))
    if required and default is not None:
        raise fail(
            where,
            f"variable {name!r} has both 'default' and required = true; give exactly one "
            "(a required variable gets its value at start-up)",
        )
    if not required and default is None:
        raise fail(where, f"variable {name!r} has neither 'default' nor required = true; {shape}")
    return Variable(name, default, bool(body.get("secret", False)))


def parse_component_variables(
    value: object, declared: Mapping[str, Variable], where: str, fail: Fail
) -> dict[str, str]:
    """A `[component.NAME.variables]` table: keys to templates over the `declared` application variables."""
    if not isinstance(value, dict):
        raise fail(
            where,
            f"'variables' must be a table of strings, not {kind_of(value)}; "
            'write variables = { key = "{{ app_variable }}" }',
        )
    templates: dict[str, str] = {}
    for key, template in value.items():
        problem = name_problem(key)
        if problem is not None:
            raise fail(where, f"variable name {key!r} in 'variables' is invalid: {problem}; {NAME_RULE}")
        if not isinstance(template, str):
            raise fail(
                where,
                f"variable {key!r} must be a string, not {kind_of(template)}; "
                f'write {key} = "text" or {key} = "{{{{ app_variable }}}}"',
            )
        try:
            names = template_names(template)
        except ValueError as exc:
            raise fail(where, f"variable {key!r}: {exc}; write {{{{ name }}}}") from None
        for name in names:
            if name not in declared:
                raise fail(where, _unknown(key, name, declared))
        templates[key] = template
    return templates


def _unknown(key: str, name: str, declared: Mapping[str, Variable]) -> str:
    if not name:
        return f"variable {key!r} has an empty '{{{{ }}}}'; name an application variable inside it"
    close = difflib.get_close_matches(name, list(declared), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    known = ", ".join(repr(n) for n in declared) or "none"
    return (
        f"variable {key!r} refers to {{{{ {name} }}}}, which is not an application variable{hint}; "
        f'declare it under [variables] (as {name} = {{ default = "..." }} or {{ required = true }}); '
        f"declared: {known}"
    )
