"""wasi:config/store served to real guests: each instance reads the variables it was given."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest

from wasikv import ConfigError, Host
from wasikv.capability import InstanceSpec
from wasikv.cli.describe import inspect_component
from wasikv.interfaces.config import NAME
from wasikv.triggers.http_component import HttpComponent, HttpRequest

from .support import foreign_guest_wasm, suite_wasm

VARIABLES = {"greeting": "hello", "api_key": "s3cr3t", "empty": ""}


def probe_variables(host: Host, name: str, variables: dict[str, str] | None) -> Any:
    out, err = io.BytesIO(), io.BytesIO()
    code = host.run(suite_wasm(), ["probe", "variables", name], variables=variables, stdout=out, stderr=err)
    assert code == 0, err.getvalue().decode()
    return json.loads(out.getvalue())


def test_an_http_guest_reads_its_variables(make_host: Callable[..., Host]) -> None:
    host = make_host({"default": "memory:"})
    component = host.load(suite_wasm())
    probe = HttpComponent(host, component, name="probe", spec=InstanceSpec(variables=VARIABLES))
    report = json.loads(probe.handle(HttpRequest("GET", "/variables?name=greeting")).body)
    assert report == {"all": VARIABLES, "get": "hello"}
    report = json.loads(probe.handle(HttpRequest("GET", "/variables?name=empty")).body)
    assert report["get"] == ""
    report = json.loads(probe.handle(HttpRequest("GET", "/variables?name=nope")).body)
    assert report["error"] == "NoSuchVariable"
    # Another component of the same host, given none, sees none.
    bare = HttpComponent(host, component, name="bare")
    report = json.loads(bare.handle(HttpRequest("GET", "/variables?name=greeting")).body)
    assert report == {"all": {}, "error": "NoSuchVariable"}


def test_a_command_guest_reads_the_variables_of_its_run(make_host: Callable[..., Host]) -> None:
    host = make_host({"default": "memory:"})
    assert probe_variables(host, "api_key", VARIABLES) == {"all": VARIABLES, "get": "s3cr3t"}
    report = probe_variables(host, "greeting", None)
    assert report["all"] == {}
    assert report["error"] == "NoSuchVariable: no variable named 'greeting' is defined for this component"


def test_variables_must_be_strings(make_host: Callable[..., Host]) -> None:
    host = make_host({"default": "memory:"})
    with pytest.raises(ConfigError, match="variable 'port' must be a string, not int"):
        host.run(suite_wasm(), ["probe", "variables", "port"], variables={"port": 8080})  # type: ignore[dict-item]


def test_sdk_guests_import_wasi_config_and_wasikv_provides_it(make_host: Callable[..., Host]) -> None:
    report = inspect_component(make_host({"default": "memory:"}), suite_wasm())
    config = next(i for i in report.imports if i.name == NAME)
    assert config.provider == "wasikv" and not config.problems


def test_components_without_wasi_config_still_link(make_host: Callable[..., Host]) -> None:
    # Built against upstream's WIT only, as every component before wasi:config was.
    host = make_host({"default": "memory:"})
    wasm = foreign_guest_wasm("keyvalue-0.2.0-draft")
    assert NAME not in host.imports(host.load(wasm))
    out = io.BytesIO()
    assert host.run(wasm, ["set", "k", "v"], variables=VARIABLES, stdout=out) == 0
    assert host.bucket().get("k") == b"v"
