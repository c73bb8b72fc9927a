"""Where variables get their values: --variable > WASIKV_VARIABLE_ > SPIN_VARIABLE_ > dotenv > default."""

from __future__ import annotations

from pathlib import Path

import pytest

from wasikv.allowed_hosts import AllowedHosts
from wasikv.app import load_app
from wasikv.app.manifest import AppManifest, load_manifest
from wasikv.app.variable_sources import VariableSources, parse_variable_flag, resolve_variables
from wasikv.errors import ConfigError

MANIFEST = """\
[application]
name = "app"

[variables]
level = { default = "from-default" }
api_key = { required = true, secret = true }
region = { default = "eu" }

[component.web]
source = "web.wasm"
variables = { level = "{{ level }}", key = "{{ api_key }}", where = "{{ region }}/{{ level }}" }

[component.other]
source = "other.wasm"
"""

SECRET = "s3cr3t-value"


@pytest.fixture
def manifest(tmp_path: Path) -> AppManifest:
    (tmp_path / "wasikv.toml").write_text(MANIFEST)
    return load_manifest(tmp_path)


def level(
    manifest: AppManifest,
    *,
    environ: dict[str, str],
    flags: dict[str, str] | None = None,
    env_file: Path | None = None,
) -> str:
    """The value the web component sees for `level`, with api_key given by flag."""
    sources = VariableSources({"api_key": SECRET, **(flags or {})}, environ, env_file)
    return resolve_variables(manifest, sources)["web"]["level"]


def test_components_see_their_expanded_keys(manifest: AppManifest) -> None:
    resolved = resolve_variables(manifest, VariableSources(flags={"api_key": SECRET}, environ={}))
    assert dict(resolved["web"]) == {"level": "from-default", "key": SECRET, "where": "eu/from-default"}
    assert dict(resolved["other"]) == {}
    # The keys fed by a secret are hidden in the repr; the others are shown.
    assert SECRET not in repr(resolved) and "'where': 'eu/from-default'" in repr(resolved["web"])


def test_priority_of_the_sources(manifest: AppManifest, tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    assert level(manifest, environ={}) == "from-default"
    dotenv.write_text("SPIN_VARIABLE_LEVEL=from-spin-dotenv\n")
    assert level(manifest, environ={}) == "from-spin-dotenv"
    dotenv.write_text("SPIN_VARIABLE_LEVEL=from-spin-dotenv\nWASIKV_VARIABLE_LEVEL='from dotenv'\n")
    assert level(manifest, environ={}) == "from dotenv"
    environ = {"SPIN_VARIABLE_LEVEL": "from-spin-env"}
    assert level(manifest, environ=environ) == "from-spin-env"
    environ["WASIKV_VARIABLE_LEVEL"] = "from-wasikv-env"
    assert level(manifest, environ=environ) == "from-wasikv-env"
    assert level(manifest, environ=environ, flags={"level": "from-flag"}) == "from-flag"
    # An empty value is a value, as in Spin.
    assert level(manifest, environ={"WASIKV_VARIABLE_LEVEL": ""}) == ""


def test_env_file_option_replaces_the_default_dotenv(manifest: AppManifest, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("WASIKV_VARIABLE_LEVEL=beside\n")
    other = tmp_path / "prod.env"
    other.write_text('export WASIKV_VARIABLE_LEVEL="from prod.env"  # a comment\n')
    assert level(manifest, environ={}, env_file=other) == "from prod.env"
    with pytest.raises(ConfigError, match=r"missing\.env: no such file; create it, or leave --env-file out"):
        level(manifest, environ={}, env_file=tmp_path / "missing.env")


def test_a_missing_required_variable_names_it_and_how_to_give_it(manifest: AppManifest) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_variables(manifest, VariableSources(environ={}))
    message = str(caught.value)
    assert "required variable 'api_key' has no value" in message
    assert "--variable api_key=VALUE" in message and "WASIKV_VARIABLE_API_KEY" in message
    assert "SPIN_VARIABLE_API_KEY" in message and ".env" in message and "\n" not in message
    # Found in the environment (or a dotenv file) it starts.
    resolved = resolve_variables(manifest, VariableSources(environ={"SPIN_VARIABLE_API_KEY": SECRET}))
    assert resolved["web"]["key"] == SECRET


def test_an_undeclared_flag_is_refused(manifest: AppManifest) -> None:
    with pytest.raises(ConfigError, match=r"--variable levle=\.\.\.: .* declares no variable 'levle' "):
        resolve_variables(manifest, VariableSources(flags={"api_key": "x", "levle": SECRET}, environ={}))


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        ("api_key=a=b", ("api_key", "a=b")),
        ("api_key=", ("api_key", "")),
    ],
)
def test_variable_flags(flag: str, expected: tuple[str, str]) -> None:
    assert parse_variable_flag(flag) == expected


@pytest.mark.parametrize(
    ("flag", "fragment"),
    [
        ("api_key", "--variable 'api_key' has no '='"),
        ("API_KEY=" + SECRET, "--variable 'API_KEY'=...: the name is invalid: it contains 'A'"),
        ("=" + SECRET, "the name is invalid: it is empty"),
        (SECRET + "!", "--variable has no '='"),
    ],
)
def test_malformed_variable_flags_never_echo_the_value(flag: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_variable_flag(flag)
    assert fragment in str(caught.value) and SECRET not in str(caught.value)


def test_load_app_resolves_unless_told_not_to(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "wasikv.toml").write_text(MANIFEST)
    monkeypatch.delenv("WASIKV_VARIABLE_API_KEY", raising=False)
    monkeypatch.delenv("SPIN_VARIABLE_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="required variable 'api_key'"):
        load_app(tmp_path, require_sources=False)
    # `wasikv kv` runs no component: it needs no values.
    assert load_app(tmp_path, require_sources=False, resolve=False).variables == {}
    monkeypatch.setenv("WASIKV_VARIABLE_API_KEY", SECRET)
    assert load_app(tmp_path, require_sources=False).variables["web"]["key"] == SECRET


HOSTS_MANIFEST = """\
[application]
name = "app"

[variables]
api_host = { default = "api.example.com" }
api_port = { default = "8443" }
optional_endpoint = { default = "" }
token_host = { required = true, secret = true }

[component.web]
source = "web.wasm"
allowed_outbound_hosts = [
    "https://{{ api_host }}:{{ api_port }}",
    "{{ optional_endpoint }}",
    "http://localhost:3000",
]

[component.vault]
source = "vault.wasm"
allowed_outbound_hosts = ["https://{{ token_host }}"]
"""


def _hosts_app(tmp_path: Path, **flags: str) -> dict[str, object]:
    (tmp_path / "wasikv.toml").write_text(HOSTS_MANIFEST)
    sources = VariableSources({"token_host": "vault.example.com", **flags}, {})
    loaded = load_app(tmp_path, require_sources=False, variables=sources)
    return dict(loaded.allowed_outbound_hosts)


def test_allowed_outbound_hosts_entries_are_expanded_with_the_variables(tmp_path: Path) -> None:
    hosts = _hosts_app(tmp_path, api_host="internal.example.org")
    web, vault = hosts["web"], hosts["vault"]
    assert isinstance(web, AllowedHosts) and isinstance(vault, AllowedHosts)
    assert web.allows("https", "internal.example.org", 8443)
    assert not web.allows("https", "api.example.com", 8443)  # the default was overridden
    assert not web.allows("https", "internal.example.org", 443)  # the port is the variable's
    assert web.allows("http", "localhost", 3000)
    # The entry whose variable is empty is left out (Spin: an optional endpoint).
    assert len(web.entries) == 2
    assert vault.allows("https", "vault.example.com") and not vault.allows("https", "example.com")


def test_an_entry_invalid_with_its_values_names_the_component_and_entry(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        _hosts_app(tmp_path, api_port="eighty")
    message = str(caught.value)
    assert "[component.web]" in message
    assert '"https://{{ api_host }}:{{ api_port }}"' in message
    assert "'eighty' is not a number" in message


def test_a_secret_value_is_never_shown_in_an_entry_error(tmp_path: Path) -> None:
    leaked = "bad host/with a path"
    with pytest.raises(ConfigError) as caught:
        _hosts_app(tmp_path, token_host=leaked)
    message = str(caught.value)
    assert "[component.vault]" in message and "https://{{ token_host }}" in message
    assert "secret" in message and leaked not in message
