"""Application variables in wasikv.toml: declarations, names, templates, and every mistake reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from wasikv.app.manifest import ManifestError, Variable, load_manifest
from wasikv.app.variables import Variables, expand, name_problem, template_names

from .test_manifest import APP, WEB, assert_manifest_error, write

GOOD = (
    APP
    + """
[variables]
greeting = { default = "hello" }
empty = { default = "" }
api_key = { required = true, secret = true }
region = { required = false, default = "eu" }
token = { default = "t0k3n", secret = true }

[component.web]
source = "web.wasm"

[component.web.variables]
api_key = "{{ api_key }}"
banner = "{{greeting}}, {{ region }}!"
plain = "no templates here"
"""
)


def test_declarations_and_component_templates(tmp_path: Path) -> None:
    app = load_manifest(write(tmp_path, GOOD))
    assert app.variables == {
        "greeting": Variable("greeting", "hello"),
        "empty": Variable("empty", ""),
        "api_key": Variable("api_key", None, secret=True),
        "region": Variable("region", "eu"),
        "token": Variable("token", "t0k3n", secret=True),
    }
    assert app.variables["api_key"].required and not app.variables["empty"].required
    assert app.components["web"].variables == {
        "api_key": "{{ api_key }}",
        "banner": "{{greeting}}, {{ region }}!",
        "plain": "no templates here",
    }


def test_no_variables_by_default(tmp_path: Path) -> None:
    app = load_manifest(write(tmp_path, APP + WEB))
    assert app.variables == {} and app.components["web"].variables == {}


def test_inline_component_variables(tmp_path: Path) -> None:
    text = APP + '[variables]\nx = { default = "1" }\n' + WEB + 'variables = { y = "{{ x }}" }\n'
    assert load_manifest(write(tmp_path, text)).components["web"].variables == {"y": "{{ x }}"}


def test_a_secret_default_is_not_in_the_repr() -> None:
    assert "t0k3n" not in repr(Variable("token", "t0k3n", secret=True))
    assert "'hello'" in repr(Variable("greeting", "hello"))
    shown = repr(Variables({"api_key": "s3cr3t", "banner": "hi"}, frozenset({"api_key"})))
    assert "s3cr3t" not in shown and "'banner': 'hi'" in shown


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("api_key", None),
        ("a1", None),
        ("x", None),
        ("", "empty"),
        ("API_KEY", "'A'"),
        ("api-key", "'-'"),
        ("1st", "start with a lower-case letter"),
        ("_x", "start with a lower-case letter"),
        ("x_", "ends with '_'"),
        ("a__b", "'__'"),
        ("café", "'é'"),
        ("x٣", "'٣'"),  # a digit, but not an ASCII one
    ],
)
def test_spins_name_rule(name: str, problem: str | None) -> None:
    found = name_problem(name)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_templates() -> None:
    assert template_names("a {{ x }} b {{y}}{{ z_1 }}") == ["x", "y", "z_1"]
    assert template_names("no braces } { here") == []
    assert expand("{{x}}-{{ y }}-{{ x }}", {"x": "1", "y": "{{ x }}"}) == "1-{{ x }}-1"
    with pytest.raises(ValueError, match="without a closing"):
        template_names("a {{ x")


# (manifest text, fragments the message must contain besides the file name)
ERRORS: dict[str, tuple[str, list[str]]] = {
    "not a table": ('variables = "x"\n' + APP, ["[variables]", "must be a table"]),
    "bad name": (
        APP + '[variables]\nAPI_KEY = { default = "x" }\n',
        ["[variables]", "variable name 'API_KEY' is invalid", "lower-case letters", "'api_key'"],
    ),
    "entry not a table": (
        APP + '[variables]\nx = "1"\n',
        ["variable 'x' must be a table, not a string", 'x = { default = "value" }', "required = true"],
    ),
    "default and required": (
        APP + '[variables]\nx = { default = "1", required = true }\n',
        ["variable 'x' has both 'default' and required = true", "exactly one"],
    ),
    "neither": (
        APP + "[variables]\nx = { secret = true }\n",
        ["variable 'x' has neither 'default' nor required = true"],
    ),
    "required false alone": (
        APP + "[variables]\nx = { required = false }\n",
        ["variable 'x' has neither 'default' nor required = true"],
    ),
    "unknown key": (
        APP + '[variables]\nx = { defualt = "1" }\n',
        ["variable 'x' has unknown key 'defualt'", "did you mean 'default'", "default, required, secret"],
    ),
    "default not a string": (
        APP + "[variables]\nx = { default = 1 }\n",
        ["variable 'x': 'default' must be a string, not an integer"],
    ),
    "required not a boolean": (
        APP + '[variables]\nx = { required = "yes" }\n',
        ["'required' must be true or false, not a string"],
    ),
    "component variables not a table": (
        APP + WEB + 'variables = ["x"]\n',
        ["[component.web]", "'variables' must be a table of strings, not an array"],
    ),
    "component key invalid": (
        APP + WEB + 'variables = { Bad = "x" }\n',
        ["[component.web]", "variable name 'Bad' in 'variables' is invalid"],
    ),
    "component value not a string": (
        APP + WEB + "variables = { port = 8080 }\n",
        ["[component.web]", "variable 'port' must be a string, not an integer"],
    ),
    "unknown template name": (
        APP + '[variables]\napi_url = { default = "x" }\n' + WEB + 'variables = { url = "{{ api_ur }}" }\n',
        [
            "[component.web]",
            "variable 'url' refers to {{ api_ur }}, which is not an application variable",
            "did you mean 'api_url'",
            "declare it under [variables]",
        ],
    ),
    "template without variables": (
        APP + WEB + 'variables = { url = "https://{{ host }}/" }\n',
        ["{{ host }}", "not an application variable", "declared: none"],
    ),
    "unclosed template": (
        APP + '[variables]\nx = { default = "1" }\n' + WEB + 'variables = { y = "{{ x" }\n',
        ["variable 'y'", "'{{' without a closing '}}'"],
    ),
    "empty template": (
        APP + '[variables]\nx = { default = "1" }\n' + WEB + 'variables = { y = "{{ }}" }\n',
        ["variable 'y' has an empty '{{ }}'"],
    ),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_variable_errors(tmp_path: Path, case: str) -> None:
    assert_manifest_error(tmp_path, *ERRORS[case])


def test_a_secret_default_is_not_in_manifest_errors(tmp_path: Path) -> None:
    text = APP + '[variables]\nx = { default = "hunter2", secret = true, required = true }\n'
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(tmp_path, text))
    assert "hunter2" not in str(caught.value)
