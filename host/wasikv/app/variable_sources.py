"""Where application variables get their values at start-up, and what each component gets from them.

What a component gets: its resolved variables (`[component.NAME.variables]`)
and its `allowed_outbound_hosts`, whose `{{ variable }}` entries are
expanded as Spin expands them.

Highest priority first (Spin's providers, plus wasikv's own prefix):

1. `wasikv up --variable NAME=VALUE`;
2. the environment: `WASIKV_VARIABLE_<NAME>`, then Spin's `SPIN_VARIABLE_<NAME>`
   (the name upper-cased);
3. a dotenv file, holding the same `WASIKV_VARIABLE_<NAME>=...` /
   `SPIN_VARIABLE_<NAME>=...` lines as Spin's: `--env-file PATH`, else `.env`
   next to the manifest when there is one;
4. the variable's `default` in the manifest.

Every application variable is resolved before anything starts, as Spin
does: a required one that gets no value stops the app with a `ConfigError`
naming it and how to give it. Values never appear in messages or logs.
"""

from __future__ import annotations

import difflib
import io
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values

from ..allowed_hosts import AllowedHost, AllowedHosts
from ..errors import ConfigError
from ._toml import read_text, toml_key
from .manifest import AppManifest
from .variables import NAME_RULE, Variables, expand, name_problem, template_names

__all__ = [
    "DOTENV_NAME",
    "ENV_PREFIXES",
    "Resolved",
    "VariableSources",
    "parse_variable_flag",
    "resolve_app",
    "resolve_variables",
]

#: Environment variable prefixes, in priority order (the name follows, upper-cased).
ENV_PREFIXES = ("WASIKV_VARIABLE_", "SPIN_VARIABLE_")
#: The dotenv file read next to the manifest when no other is given.
DOTENV_NAME = ".env"


@dataclass(frozen=True)
class VariableSources:
    """What application variables are resolved from (see the module docstring for the order).

    `flags` are `--variable` values by name; `environ` is the environment
    (this process's when None); `env_file` a dotenv file (when None: `.env`
    next to the manifest, if it exists).
    """

    flags: Mapping[str, str] = field(default_factory=dict)
    environ: Mapping[str, str] | None = None
    env_file: str | Path | None = None


def parse_variable_flag(text: str) -> tuple[str, str]:
    """`NAME=VALUE` from `--variable`; `ConfigError` (never quoting the value) when malformed."""
    name, sep, value = text.partition("=")
    if not sep:
        shown = f" {text!r}" if name_problem(text) is None else ""
        raise ConfigError(f"--variable{shown} has no '=': write --variable NAME=VALUE")
    problem = name_problem(name)
    if problem is not None:
        raise ConfigError(f"--variable {name!r}=...: the name is invalid: {problem}; {NAME_RULE}")
    return name, value


@dataclass(frozen=True)
class Resolved:
    """What each component gets from the application variables, by component name."""

    variables: dict[str, Variables]
    allowed_outbound_hosts: dict[str, AllowedHosts]


def resolve_app(manifest: AppManifest, sources: VariableSources | None = None) -> Resolved:
    """Each component's variables and `allowed_outbound_hosts`, with the application variables' values.

    Raises `ConfigError` as `resolve_variables` does, and for an
    `allowed_outbound_hosts` entry that is no valid host with its variables'
    values (naming the component and the entry; a secret value is never shown).
    """
    values = _application_values(manifest, sources or VariableSources())
    return Resolved(
        _component_variables(manifest, values),
        {name: _allowed_hosts(manifest, name, values) for name in manifest.components},
    )


def resolve_variables(manifest: AppManifest, sources: VariableSources | None = None) -> dict[str, Variables]:
    """Each component's variables (its keys to their expanded values), by component name.

    Raises `ConfigError` for a `--variable` the manifest does not declare, an
    unreadable `--env-file`, or required variables without a value.
    """
    return _component_variables(manifest, _application_values(manifest, sources or VariableSources()))


def _component_variables(manifest: AppManifest, values: Mapping[str, str]) -> dict[str, Variables]:
    secret = {name for name, variable in manifest.variables.items() if variable.secret}
    resolved: dict[str, Variables] = {}
    for name, spec in manifest.components.items():
        templates = spec.variables
        resolved[name] = Variables(
            {key: expand(template, values) for key, template in templates.items()},
            frozenset(key for key, template in templates.items() if secret & set(template_names(template))),
        )
    return resolved


def _allowed_hosts(manifest: AppManifest, component: str, values: Mapping[str, str]) -> AllowedHosts:
    """`component`'s `allowed_outbound_hosts`, its `{{ variable }}` entries expanded with `values`."""
    where = f"{manifest.path}: [component.{toml_key(component)}]"
    secret = {name for name, variable in manifest.variables.items() if variable.secret}
    entries: list[AllowedHost] = []
    for entry in manifest.components[component].allowed_outbound_hosts:
        try:
            parsed = AllowedHosts.parse([entry], expand=lambda template: expand(template, values))
        except ConfigError as exc:
            if secret & set(template_names(entry)):
                raise ConfigError(
                    f"{where}: allowed_outbound_hosts entry {entry!r} is no valid host with its "
                    "variables' values (not shown: one is secret); write <scheme>://<host>[:<port>]"
                ) from None
            raise ConfigError(f"{where}: {exc}") from None
        entries.extend(parsed.entries)
    return AllowedHosts(tuple(entries))


def _application_values(manifest: AppManifest, sources: VariableSources) -> dict[str, str]:
    declared = manifest.variables
    for name in sources.flags:
        if name not in declared:
            raise ConfigError(f"--variable {name}=...: {manifest.path} {_undeclared(name, declared)}")
    environ = os.environ if sources.environ is None else sources.environ
    env_file = _env_file(manifest, sources.env_file)
    dotenv = _read_dotenv(env_file) if env_file is not None else {}
    values: dict[str, str] = {}
    missing: list[str] = []
    for name, variable in declared.items():
        value = _lookup(name, sources.flags, environ, dotenv)
        if value is None:
            value = variable.default
        if value is None:
            missing.append(name)
        else:
            values[name] = value
    if missing:
        raise ConfigError(_missing_message(manifest, missing, env_file))
    return values


def _lookup(
    name: str, flags: Mapping[str, str], environ: Mapping[str, str], dotenv: Mapping[str, str | None]
) -> str | None:
    if name in flags:
        return flags[name]
    keys = [prefix + name.upper() for prefix in ENV_PREFIXES]
    for table in (environ, dotenv):
        for key in keys:
            value = table.get(key)
            if value is not None:
                return value
    return None


def _env_file(manifest: AppManifest, given: str | Path | None) -> Path | None:
    if given is not None:
        return Path(given)
    beside = manifest.directory / DOTENV_NAME
    return beside if beside.is_file() else None


def _read_dotenv(path: Path) -> dict[str, str | None]:
    text = read_text(path, ConfigError, "dotenv file", "create it, or leave --env-file out")
    return dict(dotenv_values(stream=io.StringIO(text)))


def _undeclared(name: str, declared: Mapping[str, object]) -> str:
    close = difflib.get_close_matches(name, list(declared), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    known = ", ".join(repr(n) for n in declared) or "none"
    return (
        f"declares no variable {name!r}{hint}; declare it under [variables] "
        f"or leave the --variable out; declared: {known}"
    )


def _missing_message(manifest: AppManifest, missing: list[str], env_file: Path | None) -> str:
    first = missing[0]
    env = ENV_PREFIXES[0] + first.upper()
    where = str(env_file) if env_file is not None else str(manifest.directory / DOTENV_NAME)
    if len(missing) == 1:
        what = f"required variable {first!r} has no value; give it"
    else:
        what = f"required variables {', '.join(repr(n) for n in missing)} have no value; give each"
    return (
        f"{manifest.path}: {what} with --variable {first}=VALUE, the environment variable "
        f"{env} (or {ENV_PREFIXES[1]}{first.upper()}), or a {env}=... line in {where}"
    )
