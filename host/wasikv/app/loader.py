"""Loading an application: the manifest, its runtime config, and the grants they imply."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from ..allowed_hosts import AllowedHosts
from ..instance_reuse import InstanceReuse
from ..safe_files import file_kind
from ._toml import toml_key
from .manifest import AppManifest, ManifestError, load_manifest
from .runtime_config import RUNTIME_CONFIG_NAME, load_runtime_config
from .triggers import TRIGGER_KINDS, LoadContext
from .variable_sources import VariableSources, resolve_app
from .variables import Variables

__all__ = ["LoadedApp", "load_app", "with_instance_reuse"]


@dataclass(frozen=True)
class LoadedApp:
    """A checked application, ready to serve.

    `stores` maps every defined label to a store URL for `wasikv.Host`;
    `grants` maps each component to the labels it may open (Spin's rule: the
    labels in its `key_value_stores`; opening another defined label is
    `access-denied`, an undefined one `no-such-store`).
    `runtime_config_file` is the file the stores came from, if any.
    `variables` maps each component to its resolved variables (what it reads
    through wasi:config) and `allowed_outbound_hosts` to where its outbound
    HTTP requests may go (both empty when the app was loaded without
    resolving its variables).
    """

    manifest: AppManifest
    stores: dict[str, str]
    grants: dict[str, frozenset[str]]
    runtime_config_file: Path | None = None
    variables: dict[str, Variables] = field(default_factory=dict)
    allowed_outbound_hosts: dict[str, AllowedHosts] = field(default_factory=dict)


def load_app(
    manifest_path: str | Path,
    *,
    runtime_config_file: str | Path | None = None,
    require_sources: bool = True,
    variables: VariableSources | None = None,
    resolve: bool = True,
) -> LoadedApp:
    """Load and check an application; raise `ConfigError` (with what to fix) for any mistake.

    `manifest_path` is a `wasikv.toml` or its directory. Without
    `runtime_config_file`, `runtime-config.toml` next to the manifest is read
    if it exists. With `require_sources`, every component's `.wasm` must exist.
    With `resolve`, every application variable gets its value from `variables`
    (default: this process's environment and the `.env` next to the manifest;
    see `wasikv.app.variable_sources`) and a required one without a value is
    a `ConfigError`, as is an `allowed_outbound_hosts` entry that is no valid
    host with the variables' values; tools that run no component (`wasikv kv`)
    leave it out.
    """
    manifest = load_manifest(manifest_path)
    if runtime_config_file is None:
        beside = manifest.directory / RUNTIME_CONFIG_NAME
        config_path = beside if beside.is_file() else None
    else:
        config_path = Path(runtime_config_file)
    stores = load_runtime_config(config_path, manifest_dir=manifest.directory)
    config_name = str(config_path) if config_path is not None else RUNTIME_CONFIG_NAME

    def fail(where: str, problem: str) -> ManifestError:
        return ManifestError(f"{manifest.path}: {where}: {problem}")

    for name, spec in manifest.components.items():
        for label in spec.key_value_stores:
            if label not in stores:
                raise fail(
                    f"[component.{toml_key(name)}]",
                    f"component {name!r} is granted store {label!r}, which is not defined; define it "
                    f"in {config_name} as [key_value_store.{toml_key(label)}] "
                    "or remove it from key_value_stores",
                )
    grants = {name: frozenset(spec.key_value_stores) for name, spec in manifest.components.items()}
    context = LoadContext(stores=stores, grants=grants, config_name=config_name)
    for kind in TRIGGER_KINDS:
        for index, trigger in enumerate(manifest.of_kind(kind), 1):
            problem = kind.check_config(trigger, context)
            if problem is not None:
                raise fail(f"{kind.section} #{index}", problem)
    if require_sources:
        _check_sources(manifest)
    resolved = resolve_app(manifest, variables) if resolve else None
    return LoadedApp(
        manifest=manifest,
        stores=stores,
        grants=grants,
        runtime_config_file=config_path,
        variables=resolved.variables if resolved is not None else {},
        allowed_outbound_hosts=resolved.allowed_outbound_hosts if resolved is not None else {},
    )


def _check_sources(manifest: AppManifest) -> None:
    problems: list[str] = []
    buildable = False
    for name, spec in manifest.components.items():
        if spec.source.is_file():
            continue
        try:
            state = f"is {file_kind(spec.source.stat().st_mode)}, not a .wasm file"
        except OSError:
            state = "does not exist"
        problems.append(f"component {name!r}: source {spec.source} {state}")
        buildable = buildable or spec.build is not None
    if not problems:
        return
    if buildable:
        fix = "build the components first with `wasikv build` (or start with `wasikv up --build`)"
    else:
        fix = "fix the source paths, or add a [component.NAME.build] section so `wasikv build` can make them"
    raise ManifestError(f"{manifest.path}: {'; '.join(problems)}; {fix}")


def with_instance_reuse(loaded: LoadedApp, reuse: InstanceReuse) -> LoadedApp:
    """`loaded` with `reuse` for every component whose manifest entry does not set `instance_reuse`."""
    components = {
        name: spec if spec.instance_reuse is not None else replace(spec, instance_reuse=reuse)
        for name, spec in loaded.manifest.components.items()
    }
    return replace(loaded, manifest=replace(loaded.manifest, components=components))
