"""The application manifest, `wasikv.toml`: Spin's manifest v2 wherever the concepts match.

```toml
spin_manifest_version = 2          # optional; so is `wasikv_manifest_version = 1`

[application]
name = "todo"                       # required
version = "0.1.0"
description = "A to-do list"

[[trigger.http]]
route = "/api/..."                  # exact paths, or a trailing "/..." wildcard
component = "api"

[[trigger.key-value]]
store = "default"                   # a label the component is granted
prefix = "todo:"                    # optional
component = "audit"

[variables]                         # application variables (see `variables`)
api_key = { required = true, secret = true }

[component.api]
source = "api/app.wasm"             # relative to this file
key_value_stores = ["default"]      # the labels the component may open
environment = { LOG_LEVEL = "info" }
variables = { api_key = "{{ api_key }}" }   # what the guest reads through wasi:config
allowed_outbound_hosts = ["https://api.example.com", "http://127.0.0.1:8000..9000"]  # absent or []: none
instance_reuse = { max_requests = 128, idle_seconds = 10 }  # or true; absent: a fresh instance each request

[component.api.build]
command = "wasikv componentize . -w wasikv:app/http-trigger -o app.wasm"
workdir = "api"                     # relative to this file; default: its directory
watch = ["**/*.py", "**/requirements.txt"]   # relative to workdir; the default
```

`load_manifest` checks everything it can without the runtime config: every
mistake is a `ManifestError` naming the file, the table and key, and what to
write instead. Store labels are checked against the runtime config by
`wasikv.app.loader.load_app`.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from ..allowed_hosts import AllowedHost
from ..errors import ConfigError
from ..instance_reuse import InstanceReuse
from ._toml import kind_of, parse_toml, read_text, toml_key
from .triggers import HTTP, KEY_VALUE, TRIGGER_KINDS, HttpTrigger, KeyValueTrigger, Trigger, TriggerKind
from .variables import Variable, parse_component_variables, parse_declarations, template_names

__all__ = [
    "DEFAULT_WATCH",
    "MANIFEST_NAME",
    "SPIN_MANIFEST_NAME",
    "STATE_DIR",
    "AppManifest",
    "BuildSpec",
    "ComponentSpec",
    "HttpTrigger",
    "KeyValueTrigger",
    "ManifestError",
    "Variable",
    "find_manifest",
    "load_manifest",
    "parse_manifest",
]

#: The manifest's file name, looked for in the working directory.
MANIFEST_NAME = "wasikv.toml"
#: Spin's manifest file name: read where there is no `wasikv.toml` (the layout is the same).
SPIN_MANIFEST_NAME = "spin.toml"
#: The directory next to the manifest where wasikv keeps stores and build state.
STATE_DIR = ".wasikv"
#: What a build watches when its `watch` is not given (relative to its workdir): the
#: sources, and the packages a guest installs (`wasikv.build.guest_packages`).
DEFAULT_WATCH = ("**/*.py", "**/requirements.txt")

_T = TypeVar("_T")
_K = TypeVar("_K", bound=Trigger)


class ManifestError(ConfigError):
    """The manifest (or what it refers to) is wrong; the message says where and how to fix it."""


@dataclass(frozen=True)
class BuildSpec:
    """`[component.NAME.build]`: a shell command run in `workdir`, and the globs it depends on."""

    command: str
    workdir: Path
    watch: tuple[str, ...] = DEFAULT_WATCH


@dataclass(frozen=True)
class ComponentSpec:
    """`[component.NAME]`; `source` is absolute (the manifest gives it relative to itself)."""

    name: str
    source: Path
    key_value_stores: tuple[str, ...] = ()
    environment: dict[str, str] = field(default_factory=dict)
    build: BuildSpec | None = None
    #: `[component.NAME.variables]`: the keys the guest reads, each a `{{ name }}` template.
    variables: dict[str, str] = field(default_factory=dict)
    #: `allowed_outbound_hosts` as written (Spin's syntax, checked): where its outbound HTTP
    #: requests may go. Entries may be `{{ variable }}` templates, resolved with the
    #: application variables (`wasikv.app.variable_sources.resolve_app`).
    allowed_outbound_hosts: tuple[str, ...] = ()
    #: `instance_reuse`: how its instances serve more than one request; False when the
    #: manifest turns it off, None when it says nothing (both: a fresh instance per request).
    instance_reuse: InstanceReuse | bool | None = None

    @property
    def reuse(self) -> InstanceReuse | None:
        """How its instances are reused, if they are."""
        return self.instance_reuse if isinstance(self.instance_reuse, InstanceReuse) else None


@dataclass(frozen=True)
class AppManifest:
    """A parsed, checked `wasikv.toml`; `path` is absolute.

    `triggers` maps each kind's name in `TRIGGER_KINDS` to its triggers, in manifest order.
    """

    path: Path
    name: str
    version: str | None
    description: str | None
    components: dict[str, ComponentSpec]
    triggers: dict[str, list[Trigger]]
    authors: tuple[str, ...] = ()
    #: `[variables]`: the application variables, by name.
    variables: dict[str, Variable] = field(default_factory=dict)

    def of_kind(self, kind: TriggerKind[_K]) -> list[_K]:
        """The triggers of `kind`, in manifest order."""
        return cast("list[_K]", self.triggers.get(kind.name, []))

    @property
    def http_triggers(self) -> list[HttpTrigger]:
        """The `[[trigger.http]]` tables."""
        return self.of_kind(HTTP)

    @property
    def kv_triggers(self) -> list[KeyValueTrigger]:
        """The `[[trigger.key-value]]` tables."""
        return self.of_kind(KEY_VALUE)

    @property
    def directory(self) -> Path:
        """The directory the manifest is in: relative paths in it start here."""
        return self.path.parent

    @property
    def state_dir(self) -> Path:
        """`.wasikv/` next to the manifest: default SQLite stores and build state."""
        return self.path.parent / STATE_DIR


# ------------------------------------------------------------------ loading


def find_manifest(path: str | Path = MANIFEST_NAME) -> Path:
    """The manifest file `path` names: the file itself, or the manifest in a directory.

    A directory's manifest is its `wasikv.toml`, or else its `spin.toml` (a
    Spin app's directory as it is). A `wasikv.toml` that does not exist but
    has a `spin.toml` beside it (the command line's default) names that
    `spin.toml` too.
    """
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if path.name == MANIFEST_NAME and not path.exists():
        spin = path.with_name(SPIN_MANIFEST_NAME)
        if spin.is_file():
            return spin
    return path


def load_manifest(path: str | Path = MANIFEST_NAME) -> AppManifest:
    """Read and check a manifest (or the `wasikv.toml` in a directory)."""
    path = find_manifest(path)
    text = read_text(
        path,
        ManifestError,
        "manifest",
        f"create it, or point -f/--file at your manifest (a {MANIFEST_NAME} or {SPIN_MANIFEST_NAME}, "
        "or its directory)",
    )
    return parse_manifest(text, path)


def parse_manifest(text: str, path: str | Path) -> AppManifest:
    """Check manifest `text` as if read from `path` (which relative paths and messages use)."""
    shown = str(path)
    document = parse_toml(text, shown, ManifestError)
    return _Parser(shown, Path(os.path.abspath(path))).manifest(document)


# -------------------------------------------------------------- the parser

# Keys Spin users may bring along, with why wasikv refuses them.
_SPIN_ONLY = {
    "spin_version": "this is a Spin manifest v1; wasikv reads the v2 layout",
    "allowed_http_hosts": (
        'this is Spin 1\'s key; write allowed_outbound_hosts = ["https://example.com"] '
        '(an entry per scheme://host[:port]; ["*://*:*"] for every host)'
    ),
    "files": "wasikv components get no filesystem",
    "exclude_files": "wasikv components get no filesystem",
    "sqlite_databases": "wasikv offers key-value stores only",
    "ai_models": "wasikv offers key-value stores only",
    "dependencies": "wasikv does not compose components",
    "trigger": "wasikv has no application-level trigger settings; use [[trigger.http]] at the top level",
    "redis": "wasikv has no Redis trigger; use [[trigger.key-value]] to react to store writes",
    "cron": "wasikv has no cron trigger",
    "executor": "wasikv runs every HTTP component the same way",
    "id": "wasikv names components by their [component.NAME] tables and triggers need no ids",
}

_TOP_KEYS = (
    "spin_manifest_version",
    "wasikv_manifest_version",
    "application",
    "variables",
    "trigger",
    "component",
)
_APPLICATION_KEYS = ("name", "version", "description", "authors")
_COMPONENT_KEYS = (
    "source",
    "key_value_stores",
    "environment",
    "variables",
    "build",
    "allowed_outbound_hosts",
    "instance_reuse",
)
_REUSE_KEYS = ("max_requests", "idle_seconds", "max_memory_mib", "max_idle")
_BUILD_KEYS = ("command", "workdir", "watch")
#: The `allowed_outbound_hosts` entry that allows every host (scheme, host and port wildcards).
_ALL_HOSTS = "*://*:*"
_ALL_HOSTS_TOML = f'["{_ALL_HOSTS}"]'
_COMPONENT_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?\Z")
_ENV_NAME = re.compile(r"[^=\x00]+\Z")


class _Parser:
    def __init__(self, shown: str, path: Path) -> None:
        self.shown = shown
        self.path = path
        self.directory = path.parent
        self.defined: Mapping[str, ComponentSpec] = {}
        self.declared: Mapping[str, Variable] = {}

    def fail(self, where: str, problem: str) -> ManifestError:
        location = f"{self.shown}: {where}" if where else self.shown
        return ManifestError(f"{location}: {problem}")

    # ---------------------------------------------------------- generic checks

    def keys(self, table: Mapping[str, object], allowed: tuple[str, ...], where: str) -> None:
        for key in table:
            if key in allowed:
                continue
            problem = f"unknown key {key!r}"
            close = difflib.get_close_matches(key, allowed, n=1)
            if close:
                problem += f" (did you mean {close[0]!r}?)"
            reason = _SPIN_ONLY.get(key)
            if reason is not None:
                problem += f": {reason}; remove it"
            raise self.fail(where, f"{problem}; allowed keys here: {', '.join(allowed)}")

    def table(self, value: object, where: str, how: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"must be a table, not {kind_of(value)}; {how}")
        return value

    def typed(
        self,
        table: Mapping[str, Any],
        key: str,
        where: str,
        check: Callable[[object], _T | None],
        expected: str,
        example: str,
        *,
        required: bool = False,
    ) -> _T | None:
        if key not in table:
            if required:
                raise self.fail(where, f"{key!r} is missing; add {key} = {example}")
            return None
        value = table[key]
        checked = check(value)
        if checked is None:
            found = kind_of(value)
            if isinstance(value, list):
                bad = next((i for i, item in enumerate(value) if not isinstance(item, str)), None)
                if bad is not None:
                    found = f"an array whose item {bad + 1} is {kind_of(value[bad])}"
            raise self.fail(where, f"{key!r} must be {expected}, not {found}; write {key} = {example}")
        return checked

    def string(
        self, table: Mapping[str, Any], key: str, where: str, example: str, *, required: bool = False
    ) -> str | None:
        return self.typed(table, key, where, _as_str, "a string", example, required=required)

    def nonempty(self, table: Mapping[str, Any], key: str, where: str, example: str) -> str:
        value = self.string(table, key, where, example, required=True)
        assert value is not None
        if not value.strip():
            raise self.fail(where, f"{key!r} must not be empty; write {key} = {example}")
        return value

    def strings(self, table: Mapping[str, Any], key: str, where: str, example: str) -> tuple[str, ...]:
        values = self.typed(table, key, where, _as_str_list, "an array of strings", example)
        return values or ()

    # ------------------------------------------------------------ the manifest

    def manifest(self, document: dict[str, Any]) -> AppManifest:
        self.keys(document, _TOP_KEYS, "top level")
        self.version(document, "spin_manifest_version", 2)
        self.version(document, "wasikv_manifest_version", 1)
        if "application" not in document:
            raise self.fail("", 'the [application] table is missing; add [application] with name = "my-app"')
        application = self.table(document["application"], "[application]", 'write [application] name = "..."')
        self.keys(application, _APPLICATION_KEYS, "[application]")
        name = self.nonempty(application, "name", "[application]", '"my-app"')
        version = self.string(application, "version", "[application]", '"0.1.0"')
        description = self.string(application, "description", "[application]", '"What the app does"')
        authors = self.strings(application, "authors", "[application]", '["Your Name <you@example.com>"]')
        self.declared = parse_declarations(document.get("variables", {}), self.fail)
        components = self.components(document.get("component", {}))
        triggers = self.triggers(document.get("trigger", {}), components)
        return AppManifest(
            path=self.path,
            name=name,
            version=version,
            description=description,
            components=components,
            triggers=triggers,
            authors=authors,
            variables=dict(self.declared),
        )

    def version(self, document: Mapping[str, Any], key: str, supported: int) -> None:
        if key not in document:
            return
        value = document[key]
        if type(value) is not int or value != supported:
            raise self.fail(
                "top level",
                f"{key} = {value!r} is not supported; wasikv reads {key} = {supported} "
                "(or leave the key out)",
            )

    # ------------------------------------------------------------- components

    def components(self, value: object) -> dict[str, ComponentSpec]:
        tables = self.table(value, "[component]", "define each component as [component.NAME]")
        components: dict[str, ComponentSpec] = {}
        for name, body in tables.items():
            components[name] = self.component(name, body)
        return components

    def component(self, name: str, body: object) -> ComponentSpec:
        if not name.strip():
            raise self.fail("[component]", "a component has an empty name; name it, as in [component.web]")
        where = f"[component.{toml_key(name)}]"
        if not _COMPONENT_NAME.match(name):
            raise self.fail(
                where,
                "a component name may contain letters, digits, '-' and '_' and must start and end "
                "with a letter or digit; rename it (for example 'my-component')",
            )
        table = self.table(body, where, f'write [component.{toml_key(name)}] followed by source = "..."')
        self.keys(table, _COMPONENT_KEYS, where)
        if "source" not in table:
            raise self.fail(
                where,
                f"component {name!r} has no 'source'; add source = \"{name}.wasm\" "
                "(the component's .wasm file, relative to the manifest)",
            )
        source = table["source"]
        if isinstance(source, dict):
            raise self.fail(
                where,
                "'source' must be a path to a local .wasm file; wasikv does not download "
                'components (write source = "app.wasm")',
            )
        source = self.nonempty(table, "source", where, '"app.wasm"')
        allowed_outbound_hosts = self.outbound_hosts(table, where)
        stores = self.strings(table, "key_value_stores", where, '["default"]')
        for label in stores:
            if not label:
                raise self.fail(where, "'key_value_stores' contains an empty label; remove it")
        duplicates = sorted({label for label in stores if stores.count(label) > 1})
        if duplicates:
            raise self.fail(
                where, f"'key_value_stores' lists {duplicates[0]!r} more than once; list each label once"
            )
        environment = self.environment(table, where)
        variables = (
            parse_component_variables(table["variables"], self.declared, where, self.fail)
            if "variables" in table
            else {}
        )
        build = self.build(name, table.get("build"), where) if "build" in table else None
        instance_reuse = (
            self.instance_reuse(table["instance_reuse"], where) if "instance_reuse" in table else None
        )
        return ComponentSpec(
            name=name,
            source=self.resolve(source),
            key_value_stores=stores,
            environment=environment,
            build=build,
            variables=variables,
            allowed_outbound_hosts=allowed_outbound_hosts,
            instance_reuse=instance_reuse,
        )

    def instance_reuse(self, value: object, where: str) -> InstanceReuse | bool:
        """`instance_reuse = true`, `false` (False), or a table of `_REUSE_KEYS` (each optional)."""
        example = "write instance_reuse = true, or instance_reuse = { max_requests = 128, idle_seconds = 10 }"
        if isinstance(value, bool):
            return InstanceReuse() if value else False
        if not isinstance(value, dict):
            raise self.fail(
                where, f"'instance_reuse' must be true, false or a table, not {kind_of(value)}; {example}"
            )
        here = f"{where} instance_reuse"
        self.keys(value, _REUSE_KEYS, here)
        settings: dict[str, Any] = {}
        for key in ("max_requests", "max_idle", "max_memory_mib"):
            if key in value:
                number = value[key]
                if isinstance(number, bool) or not isinstance(number, int) or number < 1:
                    raise self.fail(here, f"{key} must be a whole number of at least 1, not {number!r}")
                settings[key] = number
        if "max_memory_mib" in settings:
            settings["max_memory_bytes"] = settings.pop("max_memory_mib") << 20
        if "idle_seconds" in value:
            settings["idle_seconds"] = value["idle_seconds"]
        try:
            return InstanceReuse(**settings)
        except ConfigError as exc:
            raise self.fail(here, str(exc).removeprefix("instance reuse: ")) from None

    def outbound_hosts(self, table: Mapping[str, Any], where: str) -> tuple[str, ...]:
        """`allowed_outbound_hosts` as written, each entry checked as Spin parses it.

        An entry with `{{ variable }}` templates must name declared application
        variables; its hosts are checked once their values are known.
        """
        hosts = self.strings(table, "allowed_outbound_hosts", where, '["https://api.example.com"]')
        if list(hosts) == ["insecure:allow-all"]:
            raise self.fail(
                where,
                'allowed_outbound_hosts entry "insecure:allow-all" is not accepted (nor by Spin); '
                f"write allowed_outbound_hosts = {_ALL_HOSTS_TOML} to allow every host",
            )
        for entry in hosts:
            if "{{" not in entry:
                try:
                    AllowedHost.parse(entry)
                except ConfigError as exc:
                    raise self.fail(where, str(exc)) from None
                continue
            try:
                names = template_names(entry)
            except ValueError as exc:
                raise self.fail(
                    where, f"allowed_outbound_hosts entry {json.dumps(entry)}: {exc}; write {{{{ name }}}}"
                ) from None
            for name in names:
                if name not in self.declared:
                    known = ", ".join(repr(n) for n in self.declared) or "none"
                    raise self.fail(
                        where,
                        f"allowed_outbound_hosts entry {json.dumps(entry)} refers to {{{{ {name} }}}}, "
                        "which is not an application variable; declare it under [variables] "
                        f'(as {name} = {{ default = "..." }}); declared: {known}',
                    )
        return hosts

    def environment(self, table: Mapping[str, Any], where: str) -> dict[str, str]:
        if "environment" not in table:
            return {}
        env = table["environment"]
        if not isinstance(env, dict):
            raise self.fail(
                where,
                f"'environment' must be a table of strings, not {kind_of(env)}; "
                'write environment = { NAME = "value" }',
            )
        for key, value in env.items():
            if not _ENV_NAME.match(key):
                raise self.fail(
                    where,
                    f"environment variable name {key!r} is invalid; names must be non-empty, without '='",
                )
            if not isinstance(value, str) or "\x00" in value:
                raise self.fail(
                    where,
                    f"environment variable {key!r} must be a string, not {kind_of(value)}; "
                    f'quote it: {key} = "{value}"',
                )
        return dict(env)

    def build(self, name: str, value: object, component_where: str) -> BuildSpec:
        where = f"[component.{toml_key(name)}.build]"
        table = self.table(value, where, f'write {where} followed by command = "..."')
        self.keys(table, _BUILD_KEYS, where)
        command = self.typed(
            table,
            "command",
            where,
            _as_command,
            "a string (or an array of strings, run in order)",
            '"wasikv componentize . -w wasikv:app/http-trigger -o app.wasm"',
            required=True,
        )
        assert command is not None
        if not command.strip():
            raise self.fail(
                where, "'command' must not be empty; give the shell command that builds the source"
            )
        workdir_text = self.string(table, "workdir", where, '"."')
        if workdir_text is not None and not workdir_text.strip():
            raise self.fail(
                where, "'workdir' must not be empty; leave it out to use the manifest's directory"
            )
        workdir = self.resolve(workdir_text) if workdir_text is not None else self.directory
        watch = self.strings(table, "watch", where, '["**/*.py"]') if "watch" in table else DEFAULT_WATCH
        for pattern in watch:
            if not pattern.strip():
                raise self.fail(where, "'watch' contains an empty pattern; remove it")
        return BuildSpec(command=command, workdir=workdir, watch=watch)

    def resolve(self, relative: str) -> Path:
        return Path(os.path.normpath(self.directory / relative))

    # --------------------------------------------------------------- triggers

    def triggers(self, value: object, components: Mapping[str, ComponentSpec]) -> dict[str, list[Trigger]]:
        self.defined = components
        sections = [kind.section for kind in TRIGGER_KINDS]
        triggers = self.table(value, "[trigger]", f"declare triggers as {_spoken(sections, 'or')}")
        known = {kind.name for kind in TRIGGER_KINDS}
        for name in triggers:
            if name not in known:
                problem = f"unknown trigger type {name!r}"
                reason = _SPIN_ONLY.get(name)
                if reason is not None:
                    problem += f" ({reason})"
                raise self.fail(
                    f"[[trigger.{name}]]", f"{problem}; wasikv supports {_spoken(sections, 'and')}"
                )
        parsed: dict[str, list[Trigger]] = {}
        for kind in TRIGGER_KINDS:
            found = [
                self.trigger(kind, index, body)
                for index, body in enumerate(self.trigger_list(triggers, kind.name), 1)
            ]
            conflict = kind.check_list(found)
            if conflict is not None:
                raise self.fail(f"{kind.section} {conflict.entries}", conflict.problem)
            parsed[kind.name] = found
        return parsed

    def trigger_list(self, triggers: Mapping[str, Any], kind: str) -> list[Any]:
        value = triggers.get(kind, [])
        if not isinstance(value, list):
            raise self.fail(
                f"[trigger.{kind}]",
                f"must be an array of tables: write [[trigger.{kind}]] (double brackets) for each trigger",
            )
        return value

    def trigger(self, kind: TriggerKind[_K], index: int, body: object) -> _K:
        where = f"{kind.section} #{index}"
        table = self.table(body, where, f"write {kind.example} under {kind.section}")
        self.keys(table, kind.keys, where)
        return kind.parse(self, table, where)

    def trigger_component(self, table: Mapping[str, Any], where: str) -> str:
        if isinstance(table.get("component"), dict):
            raise self.fail(
                where,
                "'component' must name a [component.NAME] table; inline components are not supported",
            )
        name = self.nonempty(table, "component", where, '"my-component"')
        if name not in self.defined:
            defined = ", ".join(repr(c) for c in self.defined) or "none"
            close = difflib.get_close_matches(name, list(self.defined), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise self.fail(
                where,
                f"component {name!r} is not defined{hint}; define [component.{toml_key(name)}] "
                f"or use one of the defined components: {defined}",
            )
        return name


def _spoken(items: Sequence[str], conjunction: str) -> str:
    """`a`, `a and b`, `a, b and c` (with `conjunction` for "and")."""
    if len(items) < 2:
        return "".join(items)
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"


def _as_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _as_str_list(value: object) -> tuple[str, ...] | None:
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    return None


def _as_command(value: object) -> str | None:
    if isinstance(value, str):
        return value
    commands = _as_str_list(value)
    if commands is None:
        return None
    # Run in order, stopping at the first failure; a multi-line command is grouped.
    return " && ".join(f"{{ {command}\n}}" if "\n" in command else command for command in commands)
