"""A Spin app's directory as it is: `spin.toml` read in place of `wasikv.toml`, Spin's build command
translated to wasikv's (or refused before it runs, with what to write instead)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from wasikv.app.manifest import MANIFEST_NAME, SPIN_MANIFEST_NAME, find_manifest, load_manifest
from wasikv.build import BuildFailed, build_app
from wasikv.build.spin_command import spin_command

# spin-python-sdk's examples/hello/spin.toml, with the component renamed.
SPIN_TOML = """\
spin_manifest_version = 2

[application]
name = "hello"
version = "0.1.0"
authors = ["Spin Framework Contributors"]
description = ""

[[trigger.http]]
route = "/..."
component = "hello"

[component.hello]
source = "app.wasm"
allowed_outbound_hosts = []
[component.hello.build]
command = "COMMAND"
"""
SPIN_BUILD = "componentize-py -w spin-http componentize app -o app.wasm"
UNTRANSLATED = "it is Spin's componentize-py command, which needs spin-sdk's WIT"


def spin_dir(root: Path, command: str = SPIN_BUILD) -> Path:
    (root / SPIN_MANIFEST_NAME).write_text(SPIN_TOML.replace("COMMAND", command))
    (root / "app.py").write_text("from spin_sdk import http\n")
    return root


def wasikv(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wasikv", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_a_directory_without_wasikv_toml_has_its_spin_toml_read(tmp_path: Path) -> None:
    assert find_manifest(tmp_path) == tmp_path / MANIFEST_NAME  # neither: the error names wasikv.toml
    spin_dir(tmp_path)
    assert find_manifest(tmp_path) == tmp_path / SPIN_MANIFEST_NAME
    assert find_manifest(tmp_path / MANIFEST_NAME) == tmp_path / SPIN_MANIFEST_NAME
    assert load_manifest(tmp_path).components["hello"].build is not None
    (tmp_path / MANIFEST_NAME).write_text('[application]\nname = "mine"\n')
    assert find_manifest(tmp_path) == tmp_path / MANIFEST_NAME  # wasikv.toml wins
    assert load_manifest(tmp_path).name == "mine"


def test_no_manifest_at_all_names_both_files(tmp_path: Path) -> None:
    done = wasikv("build", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "Error: wasikv.toml: no such file; create it, or point -f/--file at your manifest "
        "(a wasikv.toml or spin.toml, or its directory)"
    )


@pytest.mark.parametrize(
    ("command", "translated"),
    [
        (SPIN_BUILD, "wasikv componentize . -m app -w wasikv:app/spin-http -o app.wasm"),
        (
            "componentize-py --world spin-http componentize main -p . -p lib --output 'out dir/x.wasm'",
            "wasikv componentize . -m main -w wasikv:app/spin-http -o 'out dir/x.wasm' -p lib",
        ),
        (
            "componentize-py -w spin-http componentize app",
            "wasikv componentize . -m app -w wasikv:app/spin-http -o index.wasm",
        ),
    ],
)
def test_spin_s_build_command_becomes_wasikv_componentize(command: str, translated: str) -> None:
    found = spin_command(command)
    assert found is not None and found.translated == translated and found.problem is None


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        ("componentize-py -w spin-redis componentize app -o app.wasm", "Spin's world 'spin-redis'"),
        (
            "componentize-py -w spin:up/http-trigger@4.1.0 componentize app -o app.wasm",
            "Spin's world 'spin:up/http-trigger@4.1.0'",
        ),
        (f"{SPIN_BUILD} && cp app.wasm out/", UNTRANSLATED),
        ("componentize-py -w spin-http componentize src.app -o app.wasm", UNTRANSLATED),
        ("componentize-py -w spin-http componentize app -p src -o app.wasm", UNTRANSLATED),
    ],
)
def test_other_spin_builds_are_refused_with_what_to_write(command: str, problem: str) -> None:
    found = spin_command(command)
    assert found is not None and found.translated is None and found.problem is not None
    assert problem in found.problem
    assert 'write command = "wasikv componentize . -w wasikv:app/spin-http -o app.wasm"' in found.problem


@pytest.mark.parametrize(
    "command",
    [
        "wasikv componentize . -w wasikv:app/spin-http -o app.wasm",
        "componentize-py -w wasikv:app/command componentize app -o app.wasm",
        "componentize-py -d wit -w spin-http componentize app",  # its own WIT, not spin-sdk's
        "componentize-py -w wasikv:app/spin-http componentize app -o app.wasm",  # wasikv's world
        "python make.py",
        "echo 'unbalanced",
    ],
)
def test_other_commands_run_as_written(command: str) -> None:
    assert spin_command(command) is None


def test_a_refused_spin_build_never_runs(tmp_path: Path) -> None:
    root = spin_dir(tmp_path, "componentize-py -w spin-redis componentize app -o app.wasm > ran.txt")
    out = io.StringIO()
    with pytest.raises(BuildFailed) as failed:
        build_app(load_manifest(root), console=Console(file=out, force_terminal=False))
    assert str(failed.value) == (
        "component 'hello': `componentize-py -w spin-redis componentize app -o app.wasm > ran.txt` in "
        "[component.hello.build] cannot build here: it builds for Spin's world 'spin-redis', which only "
        "spin-sdk provides; wasikv builds spin-sdk 3 HTTP apps for wasikv:app/spin-http: write "
        'command = "wasikv componentize . -w wasikv:app/spin-http -o app.wasm"'
    )
    assert not (root / "ran.txt").exists()
    assert out.getvalue() == "hello: failed\n"


@pytest.mark.component  # `wasikv componentize`, behind the subprocess (it fails before componentize-py)
def test_spin_s_build_in_a_spin_directory_is_one_hint_not_a_backtrace(tmp_path: Path) -> None:
    """The app still imports spin_sdk: the translated build says which line to change, in a few lines."""
    done = wasikv("build", cwd=spin_dir(tmp_path))
    assert done.returncode == 1
    assert done.stderr.splitlines()[0] == (
        "no wasikv.toml here: reading spin.toml, Spin's manifest (wasikv reads its v2 layout)"
    )
    assert done.stdout.splitlines()[0] == (
        f"hello: `{SPIN_BUILD}` is Spin's build command; running "
        "`wasikv componentize . -m app -w wasikv:app/spin-http -o app.wasm`, its wasikv equivalent"
    )
    assert "ModuleNotFoundError: No module named 'spin_sdk'" in done.stdout
    assert "hint: wasikv_sdk.spin has spin_sdk's modules" in done.stdout
    assert "backtrace" not in done.stdout + done.stderr
    assert "failed to read path for WIT" not in done.stdout + done.stderr
    assert len(done.stdout.splitlines()) < 12
