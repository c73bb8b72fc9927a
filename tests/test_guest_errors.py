"""What a Python user sees when a guest fails to build or raises at run time (real builds, exact text)."""

from __future__ import annotations

import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest

from . import background, prebuild
from .support import COMPILE_CACHE, built_once, toolchain_digest

# Every test here builds (or fails to build) a real component in a `wasikv` process.
pytestmark = pytest.mark.component

ENV = {**os.environ, "WASIKV_CACHE_DIR": str(COMPILE_CACHE), "RUST_BACKTRACE": "1"}
WORLDS = (
    "wasikv:app/command, wasikv:app/http-trigger, wasikv:app/spin-http, wasikv:app/proxy,"
    " wasikv:app/wasi-proxy, wasikv:app/watch-trigger"
)


def wasikv(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wasikv", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        env=ENV,
        check=False,
    )


def app(tmp_path: Path, source: str) -> Path:
    directory = tmp_path / "app"
    directory.mkdir()
    (directory / "app.py").write_text(source)
    return directory


def build_error(source: str, *world: str) -> str:
    """What `wasikv componentize` says when it cannot build `source` (in the background under make test)."""
    return background.once(("build error", source, world), partial(_build_error, source, world))


def _build_error(source: str, world: tuple[str, ...]) -> str:
    # The same source fails the same way until wasikv, the SDK or componentize-py change.
    def build(parent: Path) -> None:
        directory = app(parent, source)
        done = wasikv("componentize", "app", *world, "-o", "app.wasm", cwd=parent)
        assert done.returncode == 1, done.stdout
        assert not (parent / "app.wasm").exists()
        (parent / "said").write_text(done.stderr.replace(str(directory.resolve()), "<APP>"))

    return (built_once("build-errors", toolchain_digest(source, *world), build) / "said").read_text()


RUNNER = """\
from wasikv_sdk.wit import exports


class Runner(exports.Run):
    def run(self) -> None:
        print("hi")
"""


def test_missing_class_names_the_class_and_the_world() -> None:
    # Told by wasikv's look at the source (wasikv.build.app_check), before componentize-py runs.
    assert build_error(RUNNER) == (
        "Error: cannot build app/app.py for wasikv:app/command:\n"
        "AttributeError: module 'app' has no attribute 'Run'\n"
        "hint: the world wasikv:app/command calls the class Run of app.py: define class Run(exports.Run)"
        " with a run(self) method (see `wasikv new`)\n"
    )


SPIN_IMPORT = "from spin_sdk import key_value\n\n\nclass Run:\n    def run(self) -> None:\n        pass\n"


def test_spin_sdk_import_points_to_wasikv_sdk_spin() -> None:
    # Told by wasikv's look at the source (wasikv.build.app_check): no spin_sdk is on the guest's path.
    assert build_error(SPIN_IMPORT) == (
        "Error: cannot build app/app.py for wasikv:app/command:\n"
        '  File "<APP>/app.py", line 1\n'
        "    from spin_sdk import key_value\n"
        "ModuleNotFoundError: No module named 'spin_sdk'\n"
        "hint: wasikv_sdk.spin has spin_sdk's modules: write `wasikv_sdk.spin` for `spin_sdk` in the imports"
        " (`from wasikv_sdk.spin import http, key_value`) and build with -w wasikv:app/spin-http\n"
    )


SPIN_PORT = "from spin_sdk import http\n\n\nclass IncomingHandler(http.IncomingHandler):\n    pass\n"


def test_a_spin_app_built_as_a_command_is_told_about_its_import_first() -> None:
    # As the guest's Python meets them: the import fails before the class Run is looked up.
    said = build_error(SPIN_PORT)
    assert said.startswith(
        "Error: cannot build app/app.py for wasikv:app/command:\n"
        '  File "<APP>/app.py", line 1\n'
        "    from spin_sdk import http\n"
        "ModuleNotFoundError: No module named 'spin_sdk'\n"
        "hint: wasikv_sdk.spin has spin_sdk's modules"
    ), said
    assert "Run" not in said


# The star import hides what the module binds from wasikv's look at its source
# (wasikv.build.app_check), so componentize-py finds the class missing, seconds in.
SPIN_WITHOUT_CLASS = """\
from json import *
from wasikv_sdk.spin import http


class Handler(http.IncomingHandler):
    pass
"""


def test_a_spin_app_without_its_class_names_incoming_handler() -> None:
    assert build_error(SPIN_WITHOUT_CLASS, "-w", "wasikv:app/spin-http") == (
        "Error: cannot build app/app.py for wasikv:app/spin-http:\n"
        "AttributeError: module 'app' has no attribute 'IncomingHandler'\n"
        "hint: the world wasikv:app/spin-http calls the class IncomingHandler of app.py: define"
        " class IncomingHandler(http.IncomingHandler) with a handle_request(self, request) method"
        " (http from wasikv_sdk.spin) (see `wasikv new`)\n"
    )


RECORD_WORLD_APP = """\
from wasikv_sdk import http


class Http(http.Handler):
    def handle(self, request: http.Request) -> http.Response:
        return http.Response(200, {}, "hi")
"""


def test_a_proxy_world_app_without_incoming_handler_is_told_how_to_make_one() -> None:
    # An app of wasikv:app/http-trigger built for the proxy world: told before componentize-py runs.
    assert build_error(RECORD_WORLD_APP, "-w", "wasikv:app/proxy") == (
        "Error: cannot build app/app.py for wasikv:app/proxy:\n"
        "AttributeError: module 'app' has no attribute 'IncomingHandler'\n"
        "hint: the world wasikv:app/proxy calls the class IncomingHandler of app.py: define"
        " IncomingHandler = http.incoming_handler(App), App an http.Handler subclass"
        " (or class IncomingHandler(http.IncomingHandler) with http from wasikv_sdk.spin)"
        " (see `wasikv new`)\n"
    )


@pytest.mark.parametrize(
    ("world", "said"),
    [
        ("comand", ""),
        ("wasikv:app/comand", " (its WIT defines other worlds too, which wasikv does not run)"),
    ],
)
def test_wrong_world_lists_only_wasikv_worlds(world: str, said: str) -> None:
    assert build_error(RUNNER, "-w", world) == (
        f"Error: cannot build app/app.py: unknown world {world!r}; wasikv's worlds are {WORLDS}{said}\n"
        "hint: did you mean -w wasikv:app/command?\n"
    )


SYNTAX_ERROR = "from wasikv_sdk.wit import exports\n\n\nclass Run(exports.Run):\n    def run(self) -> None\n"


def test_syntax_error_shows_the_app_file_and_line() -> None:
    assert build_error(SYNTAX_ERROR) == (
        "Error: cannot build app/app.py for wasikv:app/command:\n"
        '  File "<APP>/app.py", line 5\n'
        "    def run(self) -> None\n"
        "                         ^\n"
        "SyntaxError: expected ':'\n"
    )


RAISING = """\
from wasikv_sdk.wit import exports


def ratio(n: int) -> int:
    return 10 // n


class Run(exports.Run):
    def run(self) -> None:
        print("before")
        ratio(0)
"""

TRACEBACK = """\
Traceback (most recent call last):
  File "<APP>/app.py", line 11, in run
    ratio(0)
  File "<APP>/app.py", line 5, in ratio
    return 10 // n
ZeroDivisionError: division by zero
"""


#: The raising guest's job. Its tests run the guest holding the job's lock
#: (`background.exclusive`): one of them moves the guest's directory for a
#: moment, and test processes run side by side under make test.
RAISING_KEY = ("raising guest",)


@pytest.fixture
def raising() -> tuple[Path, Path]:
    """A guest whose `run` raises, built and compiled once: (its directory, its .wasm)."""
    return background.once(RAISING_KEY, _build_raising)


def _build_raising() -> tuple[Path, Path]:
    def build(parent: Path) -> None:
        directory = app(parent, RAISING)
        done = wasikv("componentize", str(directory), "-o", str(directory / "app.wasm"), cwd=directory)
        assert done.returncode == 0, done.stderr

    directory = built_once("raising", toolchain_digest(RAISING), build) / "app"
    prebuild.compile_into_cache(directory / "app.wasm")
    return directory, directory / "app.wasm"


for _source in (RUNNER, SPIN_IMPORT, SYNTAX_ERROR):
    prebuild.extra(("build error", _source, ()), partial(_build_error, _source, ()))
prebuild.extra(
    ("build error", SPIN_WITHOUT_CLASS, ("-w", "wasikv:app/spin-http")),
    partial(_build_error, SPIN_WITHOUT_CLASS, ("-w", "wasikv:app/spin-http")),
)
prebuild.extra(RAISING_KEY, _build_raising)


def test_runtime_exception_shows_the_python_traceback_only(
    raising: tuple[Path, Path], tmp_path: Path
) -> None:
    directory, wasm = raising
    with background.exclusive(RAISING_KEY):
        done = wasikv("run", str(wasm), cwd=tmp_path)
    assert (done.returncode, done.stdout) == (1, "before\n")
    assert done.stderr.replace(str(directory.resolve()), "<APP>") == (
        f"{TRACEBACK}Error: component trapped: the guest raised ZeroDivisionError: division by zero\n"
    )


def test_runtime_exception_verbose_keeps_the_panic_and_wasm_backtrace(
    raising: tuple[Path, Path], tmp_path: Path
) -> None:
    directory, wasm = raising
    with background.exclusive(RAISING_KEY):
        done = wasikv("-v", "run", str(wasm), cwd=tmp_path)
    assert done.returncode == 1
    shown = done.stderr.replace(str(directory.resolve()), "<APP>")
    head, _, backtrace = shown.partition(
        "Error: component trapped: error while executing at wasm backtrace:\n"
    )
    assert head.endswith(
        f"{TRACEBACK}\n"
        "thread '<unnamed>' (1) panicked at runtime/src/lib.rs:1293:29:\n"
        "Python function threw an unexpected exception\n"
        "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n"
    ), shown
    assert "!wasi:cli/run@0.2.0#run\n" in backtrace
    assert backtrace.endswith("Caused by:\n    wasm trap: wasm `unreachable` instruction executed\n")


def test_traceback_of_a_copied_component_keeps_guest_paths(
    raising: tuple[Path, Path], tmp_path: Path
) -> None:
    """A .wasm whose sources moved: the guest paths stay, nothing else is lost."""
    directory, _wasm = raising
    moved = directory.with_name("elsewhere")
    with background.exclusive(RAISING_KEY):
        directory.rename(moved)
        try:
            done = wasikv("run", str(moved / "app.wasm"), cwd=tmp_path)
        finally:
            moved.rename(directory)
    assert done.stderr == (
        "Traceback (most recent call last):\n"
        '  File "/1/app.py", line 11, in run\n'
        '  File "/1/app.py", line 5, in ratio\n'
        "ZeroDivisionError: division by zero\n"
        "Error: component trapped: the guest raised ZeroDivisionError: division by zero\n"
    )
