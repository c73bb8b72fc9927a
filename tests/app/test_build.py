"""`wasikv build`, driven as a user would: real build commands, real files, the CLI in a subprocess."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from wasikv.app.manifest import BuildSpec, load_manifest
from wasikv.build import BuildFailed, build_app, watched_files

# Writes out/app.wasm from the watched sources and logs each run outside the watched files.
MAKE = """\
import pathlib, sys
here = pathlib.Path(__file__).parent
out = here / "out"
out.mkdir(exist_ok=True)
(out / "app.wasm").write_bytes(b"built from " + (here / "src" / "main.py").read_bytes())
with open(here / "build.log", "a") as log:
    log.write(sys.executable + "\\n")
print("compiled", sys.argv[1:])
"""

MANIFEST = """\
[application]
name = "demo"

[component.web]
source = "out/app.wasm"
key_value_stores = ["default"]

[component.web.build]
command = "python make.py"

[component.prebuilt]
source = "prebuilt.wasm"
"""


def wasikv(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The CLI with a PATH that does not contain the virtualenv: the build must add it."""
    return subprocess.run(
        [sys.executable, "-m", "wasikv", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)},
    )


def project(tmp_path: Path, manifest: str = MANIFEST) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.py").write_text("print('v1')\n")
    (tmp_path / "make.py").write_text(MAKE)
    (tmp_path / "wasikv.toml").write_text(manifest)
    return tmp_path


def runs(root: Path) -> int:
    log = root / "build.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_builds_once_then_up_to_date_then_rebuilds_on_change(tmp_path: Path) -> None:
    root = project(tmp_path)
    first = wasikv("build", cwd=root)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "web: building" in first.stdout
    assert "web: done in " in first.stdout
    assert "prebuilt" not in first.stdout  # no build section: nothing to do
    assert "compiled" not in first.stdout  # a successful command's output is not shown
    wasm = root / "out" / "app.wasm"
    assert wasm.read_bytes() == b"built from print('v1')\n"
    assert runs(root) == 1
    built_at = wasm.stat().st_mtime_ns
    assert (root / ".wasikv" / "build-state.json").is_file()

    second = wasikv("build", "-f", str(root / "wasikv.toml"), cwd=root.parent)
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.splitlines() == ["web: up to date"]
    assert runs(root) == 1
    assert wasm.stat().st_mtime_ns == built_at

    (root / "README.md").write_text("not watched\n")
    (root / "src" / "__pycache__").mkdir()
    (root / "src" / "__pycache__" / "junk.py").write_text("ignored\n")
    assert wasikv("build", cwd=root).stdout.splitlines() == ["web: up to date"]

    (root / "src" / "main.py").write_text("print('v2')\n")
    third = wasikv("build", "-f", str(root), cwd=root.parent)
    assert third.returncode == 0, third.stdout + third.stderr
    assert "web: done in " in third.stdout
    assert runs(root) == 2
    assert wasm.read_bytes() == b"built from print('v2')\n"

    (root / "src" / "new.py").write_text("")  # a new watched file is a change too
    assert "web: done in " in wasikv("build", cwd=root).stdout
    assert runs(root) == 3


def test_changed_command_missing_source_and_force_rebuild(tmp_path: Path) -> None:
    root = project(tmp_path)
    assert wasikv("build", cwd=root).returncode == 0
    assert runs(root) == 1

    (root / "wasikv.toml").write_text(MANIFEST.replace("python make.py", "python make.py --release"))
    done = wasikv("build", cwd=root)
    assert "web: done in " in done.stdout
    assert runs(root) == 2

    (root / "out" / "app.wasm").unlink()
    assert "web: done in " in wasikv("build", cwd=root).stdout
    assert runs(root) == 3

    assert wasikv("build", cwd=root).stdout.splitlines() == ["web: up to date"]
    assert "web: done in " in wasikv("build", "--force", cwd=root).stdout
    assert runs(root) == 4

    # A failed build may have broken the source: even when the inputs are back to those of
    # the last successful build, the next build runs again.
    (root / "make.py").write_text(MAKE + "raise SystemExit(1)\n")
    assert wasikv("build", cwd=root).returncode == 1
    assert runs(root) == 5
    (root / "make.py").write_text(MAKE)
    assert "web: done in " in wasikv("build", cwd=root).stdout
    assert runs(root) == 6


def test_commands_find_this_wasikv_and_componentize_py_on_path(tmp_path: Path) -> None:
    manifest = MANIFEST.replace(
        'command = "python make.py"',
        'command = "wasikv --version > tools.txt && componentize-py --version >> tools.txt '
        '&& python make.py"',
    )
    root = project(tmp_path, manifest)
    done = wasikv("build", cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
    tools = (root / "tools.txt").read_text()
    assert "version 0.1.0" in tools and "componentize-py" in tools
    used_python = (root / "build.log").read_text().strip()
    assert os.path.dirname(used_python) == os.path.dirname(sys.executable)


def test_failing_command_shows_its_output_and_exits_1(tmp_path: Path) -> None:
    manifest = """\
[application]
name = "demo"

[component.first]
source = "first.wasm"
[component.first.build]
command = "echo built > first.wasm"

[component.broken]
source = "broken.wasm"
[component.broken.build]
command = "python fail.py"

[component.last]
source = "last.wasm"
[component.last.build]
command = "echo built > last.wasm"
"""
    root = project(tmp_path, manifest)
    (root / "fail.py").write_text(
        "import sys\n"
        "print('compiling app.py', flush=True)\n"
        "print('app.py:3: SyntaxError: [bad] syntax', file=sys.stderr)\n"
        "sys.exit(3)\n"
    )
    done = wasikv("build", cwd=root)
    assert done.returncode == 1
    assert "first: done in " in done.stdout
    assert "broken: failed after " in done.stdout
    assert "last: not built" in done.stdout
    assert "compiling app.py" in done.stdout
    assert "app.py:3: SyntaxError: [bad] syntax" in done.stdout
    assert "Error: component 'broken' failed to build: `python fail.py` exited with status 3" in done.stderr
    assert "exited with status 3" in done.stderr
    assert not (root / "last.wasm").exists()

    # The successful build was remembered; the failed one is tried again.
    again = wasikv("build", cwd=root)
    assert again.returncode == 1
    assert "first: up to date" in again.stdout
    assert "broken: failed" in again.stdout


def test_command_that_writes_no_source(tmp_path: Path) -> None:
    root = project(tmp_path, MANIFEST.replace("python make.py", "echo nothing here"))
    done = wasikv("build", cwd=root)
    assert done.returncode == 1
    assert "nothing here" in done.stdout
    assert (
        "component 'web': `echo nothing here` succeeded but did not write the component's source"
        in done.stderr
    )
    assert "out/app.wasm" in done.stderr


def test_missing_workdir(tmp_path: Path) -> None:
    root = project(
        tmp_path, MANIFEST.replace('command = "python make.py"', 'command = "true"\nworkdir = "nope"')
    )
    done = wasikv("build", cwd=root)
    assert done.returncode == 1
    assert f"the build workdir {root / 'nope'} does not exist" in done.stderr


def test_workdir_watch_and_component_selection(tmp_path: Path) -> None:
    manifest = """\
[application]
name = "two"

[component.api]
source = "api/api.wasm"
[component.api.build]
command = "cat *.txt > api.wasm"
workdir = "api"
watch = ["*.txt", "../shared/**"]

[component.web]
source = "web.wasm"
[component.web.build]
command = "echo web > web.wasm"
"""
    root = project(tmp_path, manifest)
    (root / "api").mkdir()
    (root / "api" / "a.txt").write_text("a")
    (root / "shared").mkdir()
    (root / "shared" / "lib.dat").write_text("1")

    only_api = wasikv("build", "-c", "api", cwd=root)
    assert only_api.returncode == 0, only_api.stderr
    assert only_api.stdout.splitlines() == [
        "api: building",
        f"api: {only_api.stdout.split('api: ')[2].strip()}",
    ]
    assert not (root / "web.wasm").exists()

    both = wasikv("build", cwd=root)
    assert both.stdout.splitlines()[0] == "api: up to date"
    assert "web: done in " in both.stdout

    (root / "shared" / "lib.dat").write_text("2")  # outside the workdir, but watched
    assert "api: done in " in wasikv("build", cwd=root).stdout
    (root / "api" / "b.md").write_text("not watched")
    assert wasikv("build", cwd=root).stdout.splitlines() == ["api: up to date", "web: up to date"]

    unknown = wasikv("build", "-c", "nope", cwd=root)
    assert unknown.returncode == 1
    assert "there is no component 'nope'; defined: 'api', 'web'" in unknown.stderr


def test_nothing_to_build_and_manifest_errors(tmp_path: Path) -> None:
    (tmp_path / "wasikv.toml").write_text('[application]\nname = "x"\n[component.web]\nsource = "w.wasm"\n')
    done = wasikv("build", cwd=tmp_path)
    assert done.returncode == 0
    assert "nothing to build" in done.stdout
    selected = wasikv("build", "-c", "web", cwd=tmp_path)
    assert selected.returncode == 1
    assert "component 'web' has no [component.web.build] section" in selected.stderr

    (tmp_path / "wasikv.toml").write_text('[application]\nname = "x"\nsorce = 1\n')
    broken = wasikv("build", cwd=tmp_path)
    assert broken.returncode == 1
    assert "Error: wasikv.toml: [application]: unknown key 'sorce'" in broken.stderr

    missing = wasikv("build", "-f", "elsewhere.toml", cwd=tmp_path)
    assert missing.returncode == 1
    assert "elsewhere.toml: no such file" in missing.stderr


def test_terminal_display_through_the_api(tmp_path: Path) -> None:
    root = project(tmp_path)
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    results = build_app(load_manifest(root), console=console)
    assert [(r.component, r.status) for r in results] == [("web", "built")]
    assert "done in" in out.getvalue()
    again = build_app(load_manifest(root), console=Console(file=io.StringIO(), force_terminal=True))
    assert [(r.component, r.status) for r in again] == [("web", "up-to-date")]

    (root / "wasikv.toml").write_text(MANIFEST.replace("python make.py", "echo oops; exit 4"))
    failed = io.StringIO()
    with pytest.raises(BuildFailed) as caught:
        build_app(load_manifest(root), console=Console(file=failed, force_terminal=True, width=100))
    assert (caught.value.component, caught.value.returncode, caught.value.output) == ("web", 4, "oops\n")
    assert "oops" in failed.getvalue() and "failed after" in failed.getvalue()


@pytest.mark.parametrize(
    ("patterns", "expected"),
    [
        (["*.py"], ["top.py"]),
        (["**/*.py"], ["pkg/deep/d.py", "pkg/mod.py", "top.py"]),
        (["pkg/**"], ["pkg/deep/d.py", "pkg/deep/data.bin", "pkg/mod.py"]),
        (["pkg"], ["pkg/deep/d.py", "pkg/deep/data.bin", "pkg/mod.py"]),
        (["pkg/*/*.py"], ["pkg/deep/d.py"]),
        (["?.txt", "[ac].md"], ["a.md", "x.txt"]),
        (["[!a].md"], ["b.md"]),
        (["top.py", "missing.py"], ["top.py"]),
        (["../sibling/*.py"], ["../sibling/s.py"]),
        (["**/*.py", "*.py"], ["pkg/deep/d.py", "pkg/mod.py", "top.py"]),
        (["**"], ["a.md", "b.md", "pkg/deep/d.py", "pkg/deep/data.bin", "pkg/mod.py", "top.py", "x.txt"]),
    ],
)
def test_watch_globs(tmp_path: Path, patterns: list[str], expected: list[str]) -> None:
    work = tmp_path / "work"
    for name in [
        "top.py",
        "x.txt",
        "a.md",
        "b.md",
        "pkg/mod.py",
        "pkg/deep/d.py",
        "pkg/deep/data.bin",
        "pkg/__pycache__/mod.py",
        ".venv/lib/site.py",
        "venv/pyvenv.cfg",
        "venv/lib/site.py",
        "node_modules/x/index.py",
        "pkg/.hidden/h.py",
        "../sibling/s.py",
    ]:
        path = work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)
    found = watched_files(BuildSpec("true", work, tuple(patterns)))
    assert [os.path.relpath(path, work) for path in found] == expected


def test_watch_never_includes_the_source(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("")
    (tmp_path / "app.wasm").write_text("")
    spec = BuildSpec("true", tmp_path, ("*",))
    assert watched_files(spec, exclude=[tmp_path / "app.wasm"]) == [tmp_path / "app.py"]


def test_components_sharing_a_workdir_do_not_rebuild_each_other(tmp_path: Path) -> None:
    manifest = """\
[application]
name = "shared"

[component.one]
source = "one.wasm"
[component.one.build]
command = "date +%N > one.wasm"
watch = ["*"]

[component.two]
source = "two.wasm"
[component.two.build]
command = "date +%N > two.wasm"
watch = ["*"]
"""
    (tmp_path / "wasikv.toml").write_text(manifest)
    assert wasikv("build", cwd=tmp_path).stdout.splitlines()[-1].startswith("two: done in ")
    assert wasikv("build", cwd=tmp_path).stdout.splitlines() == ["one: up to date", "two: up to date"]
