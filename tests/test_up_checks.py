"""`wasikv up --build` checks the ports, the stores and the manifest before it builds or compiles anything.

The app's build command only leaves a mark (and builds no component): a
refusal must come with the mark absent and no "building" line, whereas an
app that passes every check gets built, and then fails for its missing
`.wasm` (the control that the mark would show a build).
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .test_up import free_port

MANIFEST = """\
spin_manifest_version = 2

[application]
name = "checks-first"

[[trigger.http]]
route = "/..."
component = "app"

[component.app]
source = "app.wasm"
key_value_stores = ["default"]

[component.app.build]
command = "{python} -c \\"open('built', 'w').close()\\""
"""


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "wasikv.toml").write_text(MANIFEST.format(python=sys.executable))
    return tmp_path


@pytest.fixture
def held_port() -> Iterator[int]:
    """A loopback port another socket listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def up_build(app_dir: Path, *args: str, listen: int | None = None) -> subprocess.CompletedProcess[str]:
    port = free_port() if listen is None else listen
    return subprocess.run(
        [sys.executable, "-m", "wasikv", "up", "--build", "--listen", f"127.0.0.1:{port}", *args],
        cwd=app_dir,
        capture_output=True,
        text=True,
        timeout=120,
    )


def refused_before_building(done: subprocess.CompletedProcess[str], app_dir: Path) -> str:
    """The one `Error:` line of a `wasikv up` that stopped before building anything."""
    assert done.returncode == 1, done
    assert not (app_dir / "built").exists(), "the build ran"
    assert "building" not in done.stdout + done.stderr and "Serving" not in done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    return lines[0]


def test_an_app_that_passes_the_checks_is_built(app_dir: Path) -> None:
    done = up_build(app_dir)
    assert (app_dir / "built").exists()
    assert done.returncode == 1 and "app.wasm" in done.stderr, done


def test_a_port_in_use_is_refused_before_building(app_dir: Path, held_port: int) -> None:
    line = refused_before_building(up_build(app_dir, listen=held_port), app_dir)
    assert f"127.0.0.1:{held_port}" in line and "in use" in line


@pytest.mark.parametrize("option", ["--health", "--metrics"])
def test_a_probe_port_in_use_is_refused_before_building(app_dir: Path, held_port: int, option: str) -> None:
    line = refused_before_building(up_build(app_dir, option, f"127.0.0.1:{held_port}"), app_dir)
    assert line.startswith(f"Error: {option} 127.0.0.1:{held_port}: cannot listen")


def test_with_processes_a_port_in_use_is_refused_before_building(app_dir: Path, held_port: int) -> None:
    sqlite = '[key_value_store.default]\ntype = "sqlite"\npath = "kv.db"\n'
    (app_dir / "runtime-config.toml").write_text(sqlite)
    line = refused_before_building(up_build(app_dir, "--processes", "2", listen=held_port), app_dir)
    assert f"127.0.0.1:{held_port}" in line


def test_with_processes_a_memory_store_is_refused_before_building(app_dir: Path) -> None:
    (app_dir / "runtime-config.toml").write_text('[key_value_store.default]\ntype = "memory"\n')
    line = refused_before_building(up_build(app_dir, "--processes", "2"), app_dir)
    assert "'default'" in line and "--processes" in line


def test_an_unreachable_store_is_refused_before_building(app_dir: Path) -> None:
    pytest.importorskip("redis")
    closed = free_port()
    (app_dir / "runtime-config.toml").write_text(
        f'[key_value_store.default]\ntype = "redis"\nurl = "redis://127.0.0.1:{closed}/0?connect_timeout=2"\n'
    )
    line = refused_before_building(up_build(app_dir), app_dir)
    assert "store 'default' cannot be used" in line and f"127.0.0.1:{closed}" in line
    assert "runtime-config.toml" in line


def test_a_manifest_mistake_is_refused_before_building(app_dir: Path) -> None:
    manifest = app_dir / "wasikv.toml"
    manifest.write_text(
        manifest.read_text().replace('key_value_stores = ["default"]', 'key_value_stores = ["missing"]')
    )
    line = refused_before_building(up_build(app_dir), app_dir)
    assert "'missing'" in line and "not defined" in line


def test_a_required_variable_without_a_value_is_refused_before_building(app_dir: Path) -> None:
    manifest = app_dir / "wasikv.toml"
    manifest.write_text(manifest.read_text() + "\n[variables]\ntoken = { required = true }\n")
    line = refused_before_building(up_build(app_dir), app_dir)
    assert "required variable 'token' has no value" in line
