"""load_app: the manifest and runtime config together, grants and sources checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from wasikv.app import LoadedApp, ManifestError, RuntimeConfigError, load_app
from wasikv.app.runtime_config import default_store_url

MANIFEST = """\
[application]
name = "shop"

[[trigger.http]]
route = "/api/..."
component = "api"

[[trigger.key-value]]
store = "orders"
prefix = "order:"
component = "audit"

[component.api]
source = "api.wasm"
key_value_stores = ["default", "orders"]

[component.audit]
source = "audit.wasm"
key_value_stores = ["orders"]

[component.lonely]
source = "lonely.wasm"
"""

RUNTIME = '[key_value_store.orders]\ntype = "memory"\n'


def app_dir(
    tmp_path: Path, manifest: str = MANIFEST, runtime: str | None = RUNTIME, sources: bool = True
) -> Path:
    (tmp_path / "wasikv.toml").write_text(manifest, "utf-8")
    if runtime is not None:
        (tmp_path / "runtime-config.toml").write_text(runtime, "utf-8")
    if sources:
        for name in ("api", "audit", "lonely", "web"):
            (tmp_path / f"{name}.wasm").write_bytes(b"\0asm")
    return tmp_path


def test_loads_runtime_config_next_to_the_manifest(tmp_path: Path) -> None:
    loaded = load_app(app_dir(tmp_path) / "wasikv.toml")
    assert isinstance(loaded, LoadedApp)
    assert loaded.manifest.name == "shop"
    assert loaded.runtime_config_file == tmp_path / "runtime-config.toml"
    assert loaded.stores == {"orders": "memory:orders", "default": default_store_url("default", tmp_path)}
    assert loaded.grants == {
        "api": frozenset({"default", "orders"}),
        "audit": frozenset({"orders"}),
        "lonely": frozenset(),
    }


def test_explicit_runtime_config_replaces_the_one_next_to_the_manifest(tmp_path: Path) -> None:
    app_dir(tmp_path, runtime='[key_value_store.orders]\ntype = "sqlite"\n')
    other = tmp_path / "prod.toml"
    other.write_text('[key_value_store.orders]\ntype = "redis"\nurl = "redis://db:6379"\n', "utf-8")
    loaded = load_app(tmp_path, runtime_config_file=other)
    assert loaded.stores["orders"] == "redis://db:6379"
    assert loaded.runtime_config_file == other


def test_without_runtime_config_only_default_exists(tmp_path: Path) -> None:
    manifest = (
        '[application]\nname = "a"\n[component.web]\nsource = "web.wasm"\nkey_value_stores = ["default"]\n'
    )
    loaded = load_app(app_dir(tmp_path, manifest, runtime=None))
    assert loaded.runtime_config_file is None
    assert loaded.stores == {"default": default_store_url("default", tmp_path)}
    assert loaded.grants == {"web": frozenset({"default"})}


def test_granting_an_undefined_store_stops_loading(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as caught:
        load_app(app_dir(tmp_path, runtime=None))
    assert str(caught.value) == (
        f"{tmp_path / 'wasikv.toml'}: [component.api]: component 'api' is granted store 'orders', which is "
        "not defined; define it in runtime-config.toml as [key_value_store.orders] or remove it from "
        "key_value_stores"
    )


def test_the_message_names_the_runtime_config_in_use(tmp_path: Path) -> None:
    app_dir(tmp_path)
    other = tmp_path / "other.toml"
    other.write_text("", "utf-8")
    with pytest.raises(ManifestError, match=r"define it in .*other\.toml as \[key_value_store\.orders\]"):
        load_app(tmp_path, runtime_config_file=other)


def test_watched_store_must_be_defined(tmp_path: Path) -> None:
    manifest = MANIFEST.replace('store = "orders"', 'store = "archive"')
    with pytest.raises(ManifestError) as caught:
        load_app(app_dir(tmp_path, manifest))
    message = str(caught.value)
    assert "[[trigger.key-value]] #1: store 'archive' is not defined" in message
    assert "[key_value_store.archive]" in message and "'default', 'orders'" in message


def test_watched_store_must_be_granted(tmp_path: Path) -> None:
    manifest = MANIFEST.replace('key_value_stores = ["orders"]', 'key_value_stores = ["default"]')
    with pytest.raises(ManifestError) as caught:
        load_app(app_dir(tmp_path, manifest))
    assert str(caught.value).endswith(
        "[[trigger.key-value]] #1: component 'audit' watches store 'orders' but is not granted it; "
        "add 'orders' to key_value_stores in [component.audit]"
    )


def test_missing_sources(tmp_path: Path) -> None:
    manifest = MANIFEST + '[component.api.build]\ncommand = "make"\n'
    app_dir(tmp_path, manifest, sources=False)
    (tmp_path / "audit.wasm").mkdir()
    with pytest.raises(ManifestError) as caught:
        load_app(tmp_path)
    message = str(caught.value)
    assert f"component 'api': source {tmp_path / 'api.wasm'} does not exist" in message
    assert f"component 'audit': source {tmp_path / 'audit.wasm'} is a directory" in message
    assert "component 'lonely'" in message
    assert "`wasikv build`" in message and "--build" in message
    loaded = load_app(tmp_path, require_sources=False)
    assert set(loaded.grants) == {"api", "audit", "lonely"}


def test_missing_sources_without_build_sections(tmp_path: Path) -> None:
    app_dir(tmp_path, sources=False)
    with pytest.raises(
        ManifestError, match=r"fix the source paths, or add a \[component\.NAME\.build\] section"
    ):
        load_app(tmp_path)


def test_runtime_config_errors_stop_loading(tmp_path: Path) -> None:
    app_dir(tmp_path, runtime='[key_value_store.orders]\ntype = "mysql"\n')
    with pytest.raises(
        RuntimeConfigError, match=r"runtime-config\.toml: \[key_value_store\.orders\]: unknown"
    ):
        load_app(tmp_path)


def test_manifest_errors_come_first(tmp_path: Path) -> None:
    app_dir(tmp_path, MANIFEST.replace('route = "/api/..."', 'route = "api"'), runtime="not toml [")
    with pytest.raises(ManifestError, match="must start with '/'"):
        load_app(tmp_path)
