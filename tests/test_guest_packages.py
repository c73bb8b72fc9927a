"""A guest's packages from PyPI: `requirements.txt` installed for its build only, with real pip and PyPI,
and a ported Spin app that routes with one (tests/guests/spin_external_lib) served by `wasikv up --build`."""

from __future__ import annotations

import importlib.util
import io
import shutil
import signal
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from wasikv.app.manifest import DEFAULT_WATCH, BuildSpec, load_manifest
from wasikv.build import build_app, watched_files
from wasikv.build.guest_packages import GUEST_PYTHON, PACKAGES_DIR, guest_packages
from wasikv.errors import ComponentError

from .support import GUESTS
from .test_up import start

# As tests/guests/spin_external_lib/requirements.txt has them.
SPIN_PINS = "spin-sdk == 3.4.1\ncomponentize-py == 0.17.2\n"
SKIPPED_NOTES = [
    "requirements.txt: skipping `spin-sdk == 3.4.1` (wasikv_sdk.spin has spin_sdk's modules)",
    "requirements.txt: skipping `componentize-py == 0.17.2` (the build runs wasikv's own componentize-py)",
]


def app(root: Path, requirements: str) -> Path:
    (root / "app.py").write_text("import http_router\n")
    (root / "requirements.txt").write_text(requirements)
    return root


def test_no_requirements_no_packages(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("")
    assert guest_packages(tmp_path) is None
    assert not (tmp_path / ".wasikv").exists()


def test_spin_pins_are_skipped_with_a_note_each(tmp_path: Path) -> None:
    notes: list[str] = []
    requirements = f"# from a Spin example\n\n{SPIN_PINS}Spin_SDK>=3  # any spelling\n"
    packages = guest_packages(app(tmp_path, requirements), on_note=notes.append)
    assert packages is not None
    also = "requirements.txt: skipping `Spin_SDK>=3` (wasikv_sdk.spin has spin_sdk's modules)"
    assert notes == [*SKIPPED_NOTES, also] and list(packages.notes) == notes
    assert packages.directory.parent == tmp_path / PACKAGES_DIR
    assert sorted(p.name for p in packages.directory.iterdir()) == [".complete", ".requirements.txt"]


@pytest.mark.parametrize(
    "line", ["-r more.txt", "-rmore.txt", "--requirement=more.txt", "-e ./lib", "-c pins.txt"]
)
def test_lines_naming_other_files_are_refused(tmp_path: Path, line: str) -> None:
    with pytest.raises(ComponentError) as refused:
        guest_packages(app(tmp_path, f"http-router==2.0.3\n{line}\n"))
    assert str(refused.value) == (
        f"{tmp_path / 'requirements.txt'}, line 2: `{line}` is not supported for a guest; "
        "list the packages themselves in this file"
    )


def test_a_package_without_a_pure_python_wheel_is_named(tmp_path: Path) -> None:
    """http-router 4 (which Spin's external-lib example pins) ships only compiled wheels and sources."""
    with pytest.raises(ComponentError) as refused:
        guest_packages(app(tmp_path, f"{SPIN_PINS}http-router==4.1.2\n"))
    assert str(refused.value) == (
        f"{tmp_path / 'requirements.txt'}: no pure-Python wheel of http-router==4.1.2 for the guest's "
        f"Python {GUEST_PYTHON}: a guest runs only pure-Python packages (wheels tagged py3-none-any); "
        "remove it, or pin a version that has such a wheel"
    )
    assert list((tmp_path / PACKAGES_DIR).iterdir()) == []  # nothing half-installed is kept


def test_installed_apart_from_wasikv_once_per_requirements(tmp_path: Path) -> None:
    first = guest_packages(app(tmp_path, "http-router==2.0.3\n"))
    assert first is not None
    assert (first.directory / "http_router" / "__init__.py").is_file()
    assert importlib.util.find_spec("http_router") is None  # not in wasikv's own environment
    (first.directory / "kept").touch()
    (tmp_path / "requirements.txt").write_text("http-router==2.0.3  # the router\n")
    again = guest_packages(tmp_path)
    assert again is not None and again.directory == first.directory
    assert (again.directory / "kept").exists()  # the same lines: pip did not run again
    (tmp_path / "requirements.txt").write_text("http-router==2.0.2\n")
    changed = guest_packages(tmp_path)
    assert changed is not None and changed.directory != first.directory
    assert "Version: 2.0.2" in (changed.directory / "http_router-2.0.2.dist-info" / "METADATA").read_text()
    assert [p.name for p in (tmp_path / PACKAGES_DIR).iterdir()] == [changed.directory.name]


def test_a_changed_requirements_txt_rebuilds_by_default(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("")
    (tmp_path / "requirements.txt").write_text("")
    installed = tmp_path / PACKAGES_DIR / "0123" / "lib"
    installed.mkdir(parents=True)
    (installed / "mod.py").write_text("")
    (installed / "requirements.txt").write_text("")
    watched = watched_files(BuildSpec("wasikv componentize . -o app.wasm", tmp_path, DEFAULT_WATCH))
    assert watched == [tmp_path / "app.py", tmp_path / "requirements.txt"]


def test_build_shows_the_notes_of_a_command_that_succeeds(tmp_path: Path) -> None:
    make = "print('compiling'); print('note: pinned spin-sdk skipped'); open('app.wasm', 'w')"
    (tmp_path / "make.py").write_text(make)
    manifest = '[application]\nname = "a"\n[component.web]\nsource = "app.wasm"\n'
    (tmp_path / "wasikv.toml").write_text(manifest + '[component.web.build]\ncommand = "python make.py"\n')
    out = io.StringIO()
    build_app(load_manifest(tmp_path), console=Console(file=out, force_terminal=False))
    lines = out.getvalue().splitlines()
    assert lines[:2] == ["web: building", "web: note: pinned spin-sdk skipped"]
    assert len(lines) == 3 and lines[2].startswith("web: done in ")  # not the other line


@pytest.mark.component  # `wasikv up --build` builds behind the subprocess
def test_a_spin_app_with_a_pypi_package_served_from_its_directory_as_it_is(tmp_path: Path) -> None:
    """spin.toml with Spin's build command, and a requirements.txt pinning spin-sdk: `wasikv up --build`."""
    root = tmp_path / "external-lib"
    shutil.copytree(GUESTS / "spin_external_lib", root)
    server = start(root, "--build")
    try:
        with httpx.Client(base_url=server.base, timeout=30) as client:
            assert client.get("/").text == f"Hello from http-router 2.0.3 on Python {GUEST_PYTHON}"
            assert client.get("/queryparams/", params={"foo": "bar"}).text == "bar"
            assert client.get("/nope").status_code == 404
    finally:
        server.proc.send_signal(signal.SIGINT)
        out, err = server.proc.communicate(timeout=30)
    assert "no wasikv.toml here: reading spin.toml, Spin's manifest (wasikv reads its v2 layout)" in err
    assert (
        "external-lib: `componentize-py -w spin-http componentize app -o app.wasm` is Spin's build "
        "command; running `wasikv componentize . -m app -w wasikv:app/spin-http -o app.wasm`, its "
        "wasikv equivalent"
    ) in out
    for note in SKIPPED_NOTES:
        assert f"external-lib: note: {note}" in out
    assert list((root / PACKAGES_DIR).glob("*/http_router/router.py"))
