"""wasikv.toml: a full manifest, and every kind of mistake reported with the file and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wasikv.app.manifest import (
    DEFAULT_WATCH,
    BuildSpec,
    ComponentSpec,
    HttpTrigger,
    KeyValueTrigger,
    ManifestError,
    load_manifest,
)
from wasikv.errors import ConfigError

FULL = """\
spin_manifest_version = 2
wasikv_manifest_version = 1

[application]
name = "todo"
version = "0.2.0"
description = "A to-do list"
authors = ["Ada <ada@example.com>"]

[[trigger.http]]
route = "/api/..."
component = "api"

[[trigger.http]]
route = "/"
component = "web"

[[trigger.key-value]]
store = "default"
prefix = "todo:"
component = "audit"

[[trigger.key-value]]
store = "events"
component = "audit"

[component.api]
source = "api/app.wasm"
key_value_stores = ["default", "cache"]
environment = { LOG_LEVEL = "debug", EMPTY = "" }
allowed_outbound_hosts = []

[component.api.build]
command = "wasikv componentize . -w wasikv:app/http-trigger -o app.wasm"
workdir = "api"
watch = ["**/*.py", "../shared/*.py"]

[component.web]
source = "/opt/web.wasm"

[component.audit]
source = "audit.wasm"
key_value_stores = ["default", "events"]

[component.audit.build]
command = ["echo one", "echo two"]
"""

APP = '[application]\nname = "app"\n'
WEB = '[component.web]\nsource = "web.wasm"\n'


def write(tmp_path: Path, text: str, name: str = "wasikv.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, "utf-8")
    return path


def test_full_manifest(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    app = load_manifest(path)
    assert app.path == path
    assert (app.name, app.version, app.description) == ("todo", "0.2.0", "A to-do list")
    assert app.authors == ("Ada <ada@example.com>",)
    assert app.directory == tmp_path
    assert app.state_dir == tmp_path / ".wasikv"
    assert app.http_triggers == [HttpTrigger("/api/...", "api"), HttpTrigger("/", "web")]
    assert app.kv_triggers == [
        KeyValueTrigger("default", "todo:", "audit"),
        KeyValueTrigger("events", "", "audit"),
    ]
    assert list(app.components) == ["api", "web", "audit"]
    assert app.components["api"] == ComponentSpec(
        name="api",
        source=tmp_path / "api" / "app.wasm",
        key_value_stores=("default", "cache"),
        environment={"LOG_LEVEL": "debug", "EMPTY": ""},
        build=BuildSpec(
            command="wasikv componentize . -w wasikv:app/http-trigger -o app.wasm",
            workdir=tmp_path / "api",
            watch=("**/*.py", "../shared/*.py"),
        ),
    )
    web = app.components["web"]
    assert (web.source, web.key_value_stores, web.environment, web.build) == (
        Path("/opt/web.wasm"),
        (),
        {},
        None,
    )
    audit_build = app.components["audit"].build
    assert audit_build == BuildSpec("echo one && echo two", tmp_path, DEFAULT_WATCH)


def test_minimal_manifest_and_directory_argument(tmp_path: Path) -> None:
    write(tmp_path, APP)
    app = load_manifest(tmp_path)
    assert (app.name, app.version, app.description, app.authors) == ("app", None, None, ())
    assert (app.components, app.http_triggers, app.kv_triggers) == ({}, [], [])
    assert app.path == tmp_path / "wasikv.toml"


def test_relative_manifest_path_resolves_against_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", APP + WEB + '[component.web.build]\ncommand = "x"\nworkdir = "../w"\n')
    monkeypatch.chdir(tmp_path)
    app = load_manifest("sub/wasikv.toml")
    assert app.path == tmp_path / "sub" / "wasikv.toml"
    assert app.components["web"].source == tmp_path / "sub" / "web.wasm"
    build = app.components["web"].build
    assert build is not None and build.workdir == tmp_path / "w"


def test_manifest_error_is_a_config_error() -> None:
    assert issubclass(ManifestError, ConfigError)


# (manifest text, fragments the message must contain besides the file name)
ERRORS: dict[str, tuple[str, list[str]]] = {
    "toml syntax": ('[application\nname = "x"\n', ["line 1", "invalid TOML"]),
    "toml syntax later line": (APP + WEB + 'key_value_stores = ["a",\n', ["line 5", "end of the file"]),
    "toml syntax mid-file": (
        APP + WEB + "key_value_stores = [a]\n" + APP,
        ["line 5, column", "invalid TOML"],
    ),
    "duplicate component": (
        APP + WEB + '[component.web]\nsource = "other.wasm"\n',
        ["line 5", "invalid TOML", "only once"],
    ),
    "unknown top-level key": (
        "colour = 1\n" + APP,
        ["top level", "unknown key 'colour'", "allowed keys here: spin_manifest_version,", "component"],
    ),
    "unknown application key": (
        APP + 'vesion = "1"\n',
        ["[application]", "unknown key 'vesion'", "did you mean 'version'", "name, version"],
    ),
    "application-level trigger settings": (
        APP + '[application.trigger.http]\nbase = "/"\n',
        ["[application]", "unknown key 'trigger'", "no application-level trigger settings"],
    ),
    "spin v1": ('spin_version = "1"\n' + APP, ["unknown key 'spin_version'", "manifest v1"]),
    "unknown component key": (
        APP + WEB + 'sorce = "x"\n',
        ["[component.web]", "unknown key 'sorce'", "did you mean 'source'", "source, key_value_stores"],
    ),
    "outbound host without scheme": (
        APP + WEB + 'allowed_outbound_hosts = ["example.com"]\n',
        [
            "[component.web]",
            'allowed_outbound_hosts entry "example.com"',
            "it has no scheme",
            "<scheme>://<host>[:<port>]",
        ],
    ),
    "outbound host with a path": (
        APP + WEB + 'allowed_outbound_hosts = ["https://example.com/api"]\n',
        ['entry "https://example.com/api"', "must not include a path"],
    ),
    "outbound host bad port": (
        APP + WEB + 'allowed_outbound_hosts = ["http://localhost:99999"]\n',
        ['entry "http://localhost:99999"', "not a number from 0 to 65535"],
    ),
    "outbound host no default port": (
        APP + WEB + 'allowed_outbound_hosts = ["*://example.com"]\n',
        ['entry "*://example.com"', "no known default port", "':*'"],
    ),
    "outbound host wildcard inside": (
        APP + WEB + 'allowed_outbound_hosts = ["https://api.*.com"]\n',
        ['entry "https://api.*.com"', "'*' is allowed only"],
    ),
    "outbound host second entry": (
        APP + WEB + 'allowed_outbound_hosts = ["https://ok.example.com", "ftp//x"]\n',
        ['entry "ftp//x"', "no scheme"],
    ),
    "outbound hosts undeclared variable": (
        APP + WEB + 'allowed_outbound_hosts = ["https://{{ api_host }}"]\n',
        [
            "[component.web]",
            'entry "https://{{ api_host }}" refers to {{ api_host }}',
            "not an application variable",
            "[variables]",
        ],
    ),
    "outbound hosts malformed template": (
        APP + WEB + 'allowed_outbound_hosts = ["https://{{ api_host"]\n',
        ['entry "https://{{ api_host"', "{{ name }}"],
    ),
    "outbound hosts insecure allow-all": (
        APP + WEB + 'allowed_outbound_hosts = ["insecure:allow-all"]\n',
        ['"insecure:allow-all" is not accepted', '["*://*:*"]'],
    ),
    "outbound hosts type": (
        APP + WEB + 'allowed_outbound_hosts = "*://*:*"\n',
        ["'allowed_outbound_hosts' must be an array of strings, not a string"],
    ),
    "spin 1 http hosts": (
        APP + WEB + 'allowed_http_hosts = ["insecure:allow-all"]\n',
        ["unknown key 'allowed_http_hosts'", "allowed_outbound_hosts"],
    ),
    "files": (APP + WEB + 'files = ["static/**"]\n', ["unknown key 'files'", "no filesystem"]),
    "unknown build key": (
        APP + WEB + '[component.web.build]\ncmd = "make"\n',
        ["[component.web.build]", "unknown key 'cmd'", "command, workdir, watch"],
    ),
    "unknown http trigger key": (
        APP + WEB + '[[trigger.http]]\nroute = "/"\ncomponent = "web"\nexecutor = { type = "x" }\n',
        ["[[trigger.http]] #1", "unknown key 'executor'", "route, component"],
    ),
    "unknown key-value trigger key": (
        APP + WEB + '[[trigger.key-value]]\nstore = "default"\ncomponent = "web"\nprefixes = ["a"]\n',
        ["[[trigger.key-value]] #1", "unknown key 'prefixes'", "did you mean 'prefix'", "store, prefix"],
    ),
    "unknown trigger type": (
        APP + WEB + '[[trigger.redis]]\nchannel = "x"\ncomponent = "web"\n',
        ["[[trigger.redis]]", "unknown trigger type 'redis'", "[[trigger.http]] and [[trigger.key-value]]"],
    ),
    "spin manifest version": ("spin_manifest_version = 1\n" + APP, ["spin_manifest_version = 1", "= 2"]),
    "spin manifest version string": ('spin_manifest_version = "2"\n' + APP, ["spin_manifest_version = '2'"]),
    "wasikv manifest version": ("wasikv_manifest_version = 2\n" + APP, ["wasikv_manifest_version = 1"]),
    "missing application": (WEB, ["the [application] table is missing", 'name = "my-app"']),
    "application not a table": ('application = "app"\n', ["[application]", "must be a table, not a string"]),
    "missing name": ('[application]\nversion = "1"\n', ["[application]", "'name' is missing", "name = "]),
    "empty name": ('[application]\nname = " "\n', ["[application]", "'name' must not be empty"]),
    "name type": ("[application]\nname = 3\n", ["'name' must be a string, not an integer"]),
    "version type": (
        APP + "version = 1.0\n",
        ["'version' must be a string, not a float", 'version = "0.1.0"'],
    ),
    "authors type": (APP + 'authors = "me"\n', ["'authors' must be an array of strings, not a string"]),
    "component not a table": ('component = "web"\n' + APP, ["[component]", "must be a table, not a string"]),
    "component body not a table": (
        APP + '[component]\nweb = "web.wasm"\n',
        ["[component.web]", "must be a table, not a string"],
    ),
    "component without source": (
        APP + "[component.web]\nkey_value_stores = []\n",
        ["[component.web]", "component 'web' has no 'source'", 'source = "web.wasm"'],
    ),
    "source type": (APP + "[component.web]\nsource = 3\n", ["'source' must be a string, not an integer"]),
    "source url": (
        APP + '[component.web]\nsource = { url = "https://x/y.wasm", digest = "sha256:0" }\n',
        ["[component.web]", "does not download components"],
    ),
    "empty source": (APP + '[component.web]\nsource = ""\n', ["'source' must not be empty"]),
    "stores not a list": (
        APP + WEB + 'key_value_stores = "default"\n',
        ["'key_value_stores' must be an array of strings, not a string", 'key_value_stores = ["default"]'],
    ),
    "stores with a number": (
        APP + WEB + 'key_value_stores = ["a", 1]\n',
        ["must be an array of strings, not an array whose item 2 is an integer"],
    ),
    "empty store label": (APP + WEB + 'key_value_stores = [""]\n', ["contains an empty label"]),
    "duplicate store label": (
        APP + WEB + 'key_value_stores = ["a", "b", "a"]\n',
        ["lists 'a' more than once"],
    ),
    "environment not a table": (
        APP + WEB + 'environment = ["A=1"]\n',
        ["'environment' must be a table of strings, not an array"],
    ),
    "environment value": (
        APP + WEB + "environment = { PORT = 80 }\n",
        ["environment variable 'PORT' must be a string, not an integer", 'PORT = "80"'],
    ),
    "environment name": (APP + WEB + 'environment = { "A=B" = "1" }\n', ["'A=B' is invalid"]),
    "empty component name": (APP + '[component.""]\nsource = "x.wasm"\n', ["[component]", "empty name"]),
    "bad component name": (
        APP + '[component."my app"]\nsource = "x.wasm"\n',
        ['[component."my app"]', "letters, digits"],
    ),
    "build without command": (
        APP + WEB + '[component.web.build]\nworkdir = "."\n',
        ["[component.web.build]", "'command' is missing"],
    ),
    "build command type": (
        APP + WEB + "[component.web.build]\ncommand = 3\n",
        ["'command' must be a string (or an array of strings, run in order), not an integer"],
    ),
    "empty build command": (
        APP + WEB + '[component.web.build]\ncommand = ""\n',
        ["'command' must not be empty"],
    ),
    "empty command list": (
        APP + WEB + "[component.web.build]\ncommand = []\n",
        ["'command' must not be empty"],
    ),
    "build watch type": (
        APP + WEB + '[component.web.build]\ncommand = "make"\nwatch = "*.py"\n',
        ["'watch' must be an array of strings, not a string"],
    ),
    "empty workdir": (
        APP + WEB + '[component.web.build]\ncommand = "make"\nworkdir = ""\n',
        ["'workdir' must not be empty"],
    ),
    "build not a table": (APP + WEB + 'build = "make"\n', ["[component.web.build]", "must be a table"]),
    "trigger.http as a table": (
        APP + WEB + '[trigger.http]\nroute = "/"\ncomponent = "web"\n',
        ["[trigger.http]", "must be an array of tables", "[[trigger.http]] (double brackets)"],
    ),
    "trigger not a table": ('trigger = "http"\n' + APP, ["[trigger]", "must be a table"]),
    "trigger undefined component": (
        APP + WEB + '[[trigger.http]]\nroute = "/"\ncomponent = "wbe"\n',
        [
            "[[trigger.http]] #1",
            "component 'wbe' is not defined",
            "did you mean 'web'",
            "[component.wbe]",
            "'web'",
        ],
    ),
    "kv trigger undefined component": (
        APP + WEB + '[[trigger.key-value]]\nstore = "default"\ncomponent = "audit"\n',
        ["[[trigger.key-value]] #1", "component 'audit' is not defined"],
    ),
    "trigger without component": (
        APP + WEB + '[[trigger.http]]\nroute = "/"\n',
        ["[[trigger.http]] #1", "'component' is missing"],
    ),
    "inline component": (
        APP + WEB + '[[trigger.http]]\nroute = "/"\ncomponent = { source = "x.wasm" }\n',
        ["inline components are not supported"],
    ),
    "trigger without route": (
        APP + WEB + '[[trigger.http]]\ncomponent = "web"\n',
        ["[[trigger.http]] #1", "'route' is missing", 'route = "/hello"'],
    ),
    "route type": (
        APP + WEB + '[[trigger.http]]\nroute = 1\ncomponent = "web"\n',
        ["'route' must be a string"],
    ),
    "private route": (
        APP + WEB + '[[trigger.http]]\nroute = { private = true }\ncomponent = "web"\n',
        ["private routes are not supported"],
    ),
    "route without slash": (
        APP + WEB + '[[trigger.http]]\nroute = "hello"\ncomponent = "web"\n',
        ["[[trigger.http]] #1", "route 'hello' must start with '/'", "'/hello'"],
    ),
    "wildcard in the middle": (
        APP + WEB + '[[trigger.http]]\nroute = "/a/.../b"\ncomponent = "web"\n',
        ["route '/a/.../b'", "only be the whole last segment"],
    ),
    "glued wildcard": (
        APP + WEB + '[[trigger.http]]\nroute = "/a..."\ncomponent = "web"\n',
        ["route '/a...'", "only be the whole last segment"],
    ),
    "star wildcard": (
        APP + WEB + '[[trigger.http]]\nroute = "/a/*"\ncomponent = "web"\n',
        ["trailing '/...'"],
    ),
    "path parameter": (
        APP + WEB + '[[trigger.http]]\nroute = "/users/:id"\ncomponent = "web"\n',
        ["':id' are not supported", "'/users/...'"],
    ),
    "empty segment": (
        APP + WEB + '[[trigger.http]]\nroute = "/a//b"\ncomponent = "web"\n',
        ["empty path segment"],
    ),
    "query in route": (
        APP + WEB + '[[trigger.http]]\nroute = "/a?b=1"\ncomponent = "web"\n',
        ["query string"],
    ),
    "duplicate exact route": (
        APP
        + WEB
        + '[component.api]\nsource = "api.wasm"\n'
        + '[[trigger.http]]\nroute = "/x"\ncomponent = "web"\n'
        + '[[trigger.http]]\nroute = "/y"\ncomponent = "web"\n'
        + '[[trigger.http]]\nroute = "/x"\ncomponent = "api"\n',
        ["[[trigger.http]] #1 and #3", "route '/x' is used by two triggers", "components 'web' and 'api'"],
    ),
    "duplicate wildcard": (
        APP
        + WEB
        + '[[trigger.http]]\nroute = "/api/..."\ncomponent = "web"\n'
        + '[[trigger.http]]\nroute = "/api/..."\ncomponent = "web"\n',
        ["#1 and #2", "wildcard route '/api/...' is used by two triggers", "component 'web'"],
    ),
    "duplicate catch-all": (
        APP + WEB + '[[trigger.http]]\nroute = "/..."\ncomponent = "web"\n' * 2,
        ["wildcard route '/...' is used by two triggers"],
    ),
    "duplicate kv trigger": (
        APP + WEB + '[[trigger.key-value]]\nstore = "default"\ncomponent = "web"\n' * 2,
        ["[[trigger.key-value]] #2", "declared twice"],
    ),
    "kv trigger without store": (
        APP + WEB + '[[trigger.key-value]]\ncomponent = "web"\n',
        ["[[trigger.key-value]] #1", "'store' is missing"],
    ),
    "kv prefix type": (
        APP + WEB + '[[trigger.key-value]]\nstore = "default"\nprefix = 1\ncomponent = "web"\n',
        ["'prefix' must be a string, not an integer"],
    ),
    "kv lease_seconds zero": (
        APP + WEB + '[[trigger.key-value]]\nstore = "default"\ncomponent = "web"\nlease_seconds = 0\n',
        ["[[trigger.key-value]] #1", "lease_seconds must be a number of seconds from 1 to 3600", "not 0"],
    ),
    "kv lease_seconds too long": (
        APP + WEB + '[[trigger.key-value]]\nstore = "default"\ncomponent = "web"\nlease_seconds = 3601\n',
        ["[[trigger.key-value]] #1", "lease_seconds must be a number of seconds from 1 to 3600", "not 3601"],
    ),
    "kv lease_seconds text": (
        APP + WEB + '[[trigger.key-value]]\nstore = "default"\ncomponent = "web"\nlease_seconds = "10"\n',
        ["[[trigger.key-value]] #1", "lease_seconds must be a number of seconds from 1 to 3600", "not '10'"],
    ),
    "kv lease_seconds bool": (
        APP + WEB + '[[trigger.key-value]]\nstore = "default"\ncomponent = "web"\nlease_seconds = true\n',
        ["[[trigger.key-value]] #1", "lease_seconds must be a number of seconds from 1 to 3600", "not True"],
    ),
    "kv lease_seconds nan": (
        APP + WEB + '[[trigger.key-value]]\nstore = "default"\ncomponent = "web"\nlease_seconds = nan\n',
        ["[[trigger.key-value]] #1", "lease_seconds must be a number of seconds from 1 to 3600", "not nan"],
    ),
    "kv lease_seconds negative": (
        APP + WEB + '[[trigger.key-value]]\nstore = "default"\ncomponent = "web"\nlease_seconds = -5.5\n',
        ["[[trigger.key-value]] #1", "lease_seconds must be a number of seconds from 1 to 3600", "not -5.5"],
    ),
}


def assert_manifest_error(tmp_path: Path, text: str, fragments: list[str]) -> None:
    """Loading manifest `text` fails with an error naming the file and holding every fragment."""
    path = write(tmp_path, text)
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    message = str(caught.value)
    assert message.startswith(str(path)), message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


@pytest.mark.parametrize("case", list(ERRORS))
def test_manifest_errors(tmp_path: Path, case: str) -> None:
    assert_manifest_error(tmp_path, *ERRORS[case])


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"wasikv\.toml: no such file; create it, or point -f/--file"):
        load_manifest(tmp_path / "wasikv.toml")
    with pytest.raises(ManifestError, match="no such file"):
        load_manifest(tmp_path)  # a directory without a manifest


def test_manifest_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "wasikv.toml"
    path.write_bytes(b'[application]\nname = "caf\xe9"\n')
    with pytest.raises(ManifestError, match=r"wasikv\.toml, line 2: not valid UTF-8"):
        load_manifest(path)


@pytest.mark.parametrize(
    "hosts",
    [
        "[]",
        '["*://*:*"]',
        '[" *://*:*/ "]',
        '["https://api.example.com", "http://localhost:3000"]',
        '["*://example.com:*", "https://*.example.com", "http://127.0.0.1:8000..9000"]',
        '["https://10.0.0.0/8", "http://[::1]:8080", "http://self", "redis://cache.internal"]',
        '["mqtt://broker.example.com", "postgres://db:5432", "https://xn--bcher-kva.example"]',
    ],
)
def test_every_spin_form_of_allowed_outbound_hosts_loads(tmp_path: Path, hosts: str) -> None:
    text = APP + WEB + f"allowed_outbound_hosts = {hosts}\n"
    app = load_manifest(write(tmp_path, text))
    assert list(app.components["web"].allowed_outbound_hosts) == json.loads(hosts)


def test_allowed_outbound_hosts_are_kept_as_written(tmp_path: Path) -> None:
    text = APP + WEB + 'allowed_outbound_hosts = ["*://*:*", " https://api.example.com/ "]\n'
    web = load_manifest(write(tmp_path, text)).components["web"]
    assert web.allowed_outbound_hosts == ("*://*:*", " https://api.example.com/ ")
    assert load_manifest(write(tmp_path, APP + WEB)).components["web"].allowed_outbound_hosts == ()


def test_a_key_value_trigger_may_set_its_lease_time(tmp_path: Path) -> None:
    text = APP + WEB + '[[trigger.key-value]]\nstore = "default"\ncomponent = "web"\nlease_seconds = 2.5\n'
    (trigger,) = load_manifest(write(tmp_path, text)).kv_triggers
    assert trigger.lease_seconds == 2.5
