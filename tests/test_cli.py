"""The `wasikv` command line, driven as a user would: real processes, real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .support import COMPILE_CACHE, guest_wasm, suite_wasm


def wasikv(*args: str, cwd: Path, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wasikv", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        input=None if input is None else input.decode(),
        timeout=120,
        env={"WASIKV_CACHE_DIR": str(COMPILE_CACHE), "PATH": "/usr/bin:/bin"},
    )


_LAZY = """
import sys
import wasikv
assert "wasmtime" not in sys.modules and "wasikv.host" not in sys.modules, sorted(sys.modules)
from wasikv.cli.main import main
assert "wasmtime" not in sys.modules, "the command line imports wasmtime before a command needs it"
assert wasikv.stores.open_store is wasikv.open_store  # submodules are attributes, as they were
assert "wasmtime" not in sys.modules
assert wasikv.Host.__module__ == "wasikv.host" and "wasmtime" in sys.modules
try:
    wasikv.no_such_name
except AttributeError as exc:
    print(exc)
"""


def test_importing_wasikv_or_its_command_line_loads_neither_the_host_nor_wasmtime(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _LAZY], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "module 'wasikv' has no attribute 'no_such_name'\n"


@pytest.mark.parametrize("command", [[], ["run"], ["kv"], ["kv", "get"], ["componentize"]])
def test_help(command: list[str], tmp_path: Path) -> None:
    done = wasikv(*command, "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Usage:" in done.stdout


def test_counter_persists_in_default_sqlite_store(tmp_path: Path) -> None:
    app = guest_wasm("examples/counter")
    first = wasikv("run", str(app), cwd=tmp_path)
    second = wasikv("run", str(app), cwd=tmp_path)
    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    assert first.stdout.strip() == "counter = 1"
    assert second.stdout.strip() == "counter = 2"
    assert (tmp_path / ".wasikv" / "default.db").is_file()
    shown = wasikv("kv", "get", "counter", cwd=tmp_path)
    assert shown.stdout == "2"


def test_key_value_seeds_the_default_store(tmp_path: Path) -> None:
    done = wasikv("run", "--key-value", "counter=41", str(guest_wasm("examples/counter")), cwd=tmp_path)
    assert done.stdout.strip() == "counter = 42", done.stderr


def test_memory_store_starts_empty_each_run(tmp_path: Path) -> None:
    app = str(guest_wasm("examples/counter"))
    for _ in range(2):
        done = wasikv("run", "--store", "default=memory:", app, cwd=tmp_path)
        assert done.stdout.strip() == "counter = 1", done.stderr
    assert not (tmp_path / ".wasikv").exists()


def test_argv_env_and_no_filesystem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = str(suite_wasm())
    done = wasikv(
        "run", "--env", "GREETING=hi", "--env", "PATH", app, "probe", "report", "--flag", "x y", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["argv"] == [app, "report", "--flag", "x y"]
    assert report["env"] == {"GREETING": "hi", "PATH": "/usr/bin:/bin"}
    assert report["root"] == [] or str(report["root"]).startswith("error")


def test_variables_reach_the_guest_through_wasi_config(tmp_path: Path) -> None:
    app = str(suite_wasm())
    done = wasikv(
        "run",
        *("--variable", "greeting=hello", "--variable", "api_key=a=b", "--variable", "greeting=hi"),
        *(app, "probe", "variables", "greeting"),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    # The last value of a name wins; a value may hold '='.
    assert json.loads(done.stdout) == {"all": {"greeting": "hi", "api_key": "a=b"}, "get": "hi"}
    unset = wasikv("run", app, "probe", "variables", "greeting", cwd=tmp_path)
    assert json.loads(unset.stdout)["error"].startswith("NoSuchVariable")


@pytest.mark.parametrize(
    ("flag", "said"),
    [
        ("greeting", "Error: --variable 'greeting' has no '=': write --variable NAME=VALUE"),
        ("Greeting=hi", "Error: --variable 'Greeting'=...: the name is invalid"),
    ],
)
def test_a_malformed_variable_is_one_line_and_runs_nothing(tmp_path: Path, flag: str, said: str) -> None:
    done = wasikv("run", "--variable", flag, str(tmp_path / "missing.wasm"), cwd=tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith(said) and len(done.stderr.splitlines()) == 1, done.stderr


def test_a_long_line_of_guest_output_arrives_whole_through_a_pipe(tmp_path: Path) -> None:
    # A WASI stream passes at most 64 KiB per write here; the rest used to be lost.
    long = "x" * 100_000
    done = wasikv("run", str(suite_wasm()), "probe", "report", long, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["argv"][2] == long


def test_exit_code_follows_the_component(tmp_path: Path) -> None:
    done = wasikv("run", str(suite_wasm()), "probe", "fail", cwd=tmp_path)
    assert done.returncode == 1
    assert "failing on purpose" in done.stderr


def test_trap_is_reported_not_crashing(tmp_path: Path) -> None:
    done = wasikv("run", str(suite_wasm()), "probe", "trap", cwd=tmp_path)
    assert done.returncode == 1
    assert "Error: component trapped" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--store", "default=postgres://x", "APP"], "postgres://x"),
        (["--store", "nolabel", "APP"], "expected NAME=VALUE"),
        (["missing.wasm"], "missing.wasm"),
    ],
)
def test_bad_input_gets_a_clear_error(args: list[str], message: str, tmp_path: Path) -> None:
    args = [str(suite_wasm()) if a == "APP" else a for a in args]
    done = wasikv("run", *args, cwd=tmp_path)
    assert done.returncode != 0
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_non_components_are_refused(tmp_path: Path) -> None:
    (tmp_path / "text.wasm").write_text("hello")
    (tmp_path / "core.wasm").write_bytes(b"\0asm\x01\x00\x00\x00")
    text = wasikv("run", "text.wasm", cwd=tmp_path)
    core = wasikv("run", "core.wasm", cwd=tmp_path)
    assert "not a WebAssembly binary" in text.stderr
    assert "core WebAssembly module, not a component" in core.stderr
    assert "Traceback" not in text.stderr + core.stderr


def test_kv_commands(tmp_path: Path) -> None:
    url = f"sqlite:{tmp_path / 'kv.db'}"
    assert wasikv("kv", "set", "--store", url, "b", "two", cwd=tmp_path).returncode == 0
    assert wasikv("kv", "set", "--store", url, "a", "one", cwd=tmp_path).returncode == 0
    assert (
        wasikv("kv", "set", "--store", url, "blob", "--file", "-", cwd=tmp_path, input=b"\x00\x01").returncode
        == 0
    )
    assert wasikv("kv", "get", "--store", url, "a", cwd=tmp_path).stdout == "one"
    assert wasikv("kv", "list", "--store", url, cwd=tmp_path).stdout.split() == ["a", "b", "blob"]
    assert wasikv("kv", "list", "--store", url, "--prefix", "b", cwd=tmp_path).stdout.split() == ["b", "blob"]
    assert wasikv("kv", "incr", "--store", url, "n", "5", cwd=tmp_path).stdout.strip() == "5"
    assert wasikv("kv", "incr", "--store", url, "n", "--", "-7", cwd=tmp_path).stdout.strip() == "-2"
    refused = wasikv("kv", "incr", "--store", url, "a", cwd=tmp_path)
    assert refused.returncode == 1 and "not a decimal integer" in refused.stderr
    assert wasikv("kv", "delete", "--store", url, "a", "missing", cwd=tmp_path).returncode == 0
    gone = wasikv("kv", "get", "--store", url, "a", cwd=tmp_path)
    assert gone.returncode == 1 and "does not exist" in gone.stderr


def test_kv_on_a_corrupt_file_reports_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad.db").write_bytes(b"this is not sqlite" * 100)
    done = wasikv("kv", "get", "--store", "sqlite:bad.db", "k", cwd=tmp_path)
    assert done.returncode == 1
    assert "bad.db" in done.stderr and "Traceback" not in done.stderr


def test_granting_an_undefined_label_is_refused(tmp_path: Path) -> None:
    done = wasikv(
        "run", "--store", "default=memory:", "--grant", "nope", str(suite_wasm()), "probe", cwd=tmp_path
    )
    assert done.returncode == 1
    assert "'nope' not defined" in done.stderr and "Traceback" not in done.stderr
