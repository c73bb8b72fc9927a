"""wasikv.build.app_check: what certainly stops a build (the export class the app lacks, a module
nowhere on its path), told before componentize-py runs.

The check must never refuse an app that would build: every way a module
can bind a name is either seen or makes the check stand aside.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from wasikv.build.app_check import missing_class, missing_import


def check(tmp_path: Path, source: str, name: str = "Run") -> bool:
    app = tmp_path / "app.py"
    app.write_text(source)
    return missing_class(app, name)


@pytest.mark.parametrize(
    "source",
    [
        "class Runner:\n    pass\n",
        "def make():\n    class Run:\n        pass\n    return Run\n",  # bound in the function only
        "class Outer:\n    class Run:\n        pass\n",
        "import app_helpers\nRUN = 1\n",
        "",
    ],
)
def test_an_app_without_the_class_is_found(tmp_path: Path, source: str) -> None:
    assert check(tmp_path, source)


@pytest.mark.parametrize(
    "source",
    [
        "class Run:\n    pass\n",
        "from handlers import Run\n",
        "from handlers import Runner as Run\n",
        "import Run\n",
        "Run = make_class()\n",
        "Run = http.incoming_handler(App)\n",  # how a wasikv:app/proxy app binds IncomingHandler
        "Run: type = make_class()\n",
        "if True:\n    class Run:\n        pass\n",
        "try:\n    from a import Run\nexcept ImportError:\n    from b import Run\n",
        "with open('x') as Run:\n    pass\n",
        "for Run in classes:\n    pass\n",
        "try:\n    pass\nexcept Exception as Run:\n    pass\n",
        "(Run := make_class())\n",
        "@decorate(Run := 1)\ndef f():\n    pass\n",
        "match x:\n    case Run:\n        pass\n",
    ],
)
def test_every_binding_counts(tmp_path: Path, source: str) -> None:
    assert not check(tmp_path, source)


@pytest.mark.parametrize(
    "source",
    [
        "from handlers import *\n",
        "def __getattr__(name):\n    return object\n",
        "globals()['Run'] = object\n",
        "exec('class Run: pass')\n",
        "import sys\nsetattr(sys.modules[__name__], 'Run', object)\n",
        "def install():\n    global Run\n    Run = object\n\ninstall()\n",
        "def broken(:\n",  # componentize-py reports the syntax error with the guest's Python
        "type Run = int\n",  # Python 3.12 syntax: bound, or unparsable by an older host
    ],
)
def test_what_the_tree_cannot_tell_is_left_to_componentize_py(tmp_path: Path, source: str) -> None:
    assert not check(tmp_path, source)


def test_an_unreadable_file_is_left_to_componentize_py(tmp_path: Path) -> None:
    assert not missing_class(tmp_path / "absent.py", "Run")
    (tmp_path / "latin.py").write_bytes(b"# \xff\n")
    assert not missing_class(tmp_path / "latin.py", "Run")


# ------------------------------------------------------------ imports of modules nowhere on the path


def missing(tmp_path: Path, source: str, *also_on_path: Path) -> tuple[int, str] | None:
    app_dir = tmp_path / "app"
    app_dir.mkdir(exist_ok=True)
    app = app_dir / "app.py"
    app.write_text(source)
    return missing_import(app, "spin_sdk", [app_dir, *also_on_path])


@pytest.mark.parametrize(
    ("source", "line"),
    [
        ("from spin_sdk import key_value\n", 1),
        ("import json\n\nimport spin_sdk.http as http\n", 3),
        ('"""Doc."""\nfrom spin_sdk.http import Request, Response\n', 2),
        ("import os, spin_sdk\n", 1),
        ("from __future__ import annotations\nimport re\nfrom wasikv_sdk import http\nimport spin_sdk\n", 4),
        ("import spin_sdk\nimport vendored_paths\n", 1),  # the failing import comes first
    ],
)
def test_a_top_level_import_of_a_missing_module_is_found(tmp_path: Path, source: str, line: int) -> None:
    assert missing(tmp_path, source) == (line, source.splitlines()[line - 1])


@pytest.mark.parametrize(
    "source",
    [
        "try:\n    from spin_sdk import key_value\nexcept ImportError:\n    key_value = None\n",
        "if False:\n    import spin_sdk\n",
        "def later():\n    import spin_sdk\n",
        "import sys\nsys.path.append('/vendor')\nimport spin_sdk\n",
        "import importlib\nimportlib.import_module('setup')\nimport spin_sdk\n",
        "import vendored_paths\nimport spin_sdk\n",  # may extend the path
        "from . import vendored_paths\nimport spin_sdk\n",
        "def f():\n    import vendored_paths\n\n\nf()\nimport spin_sdk\n",
        "from .spin_sdk import http\n",  # relative: another module
        "import spin_sdk_extras\n",
        "from spin_sdk import (\n",  # not Python the host can parse: left to componentize-py
    ],
)
def test_an_import_that_may_work_is_left_to_componentize_py(tmp_path: Path, source: str) -> None:
    assert missing(tmp_path, source) is None


@pytest.mark.parametrize("vendored", ["spin_sdk", "spin_sdk.py", "spin_sdk.cpython-311-x86_64-linux-gnu.so"])
def test_a_module_on_the_path_is_left_to_componentize_py(tmp_path: Path, vendored: str) -> None:
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    (vendor / vendored).mkdir() if "." not in vendored else (vendor / vendored).write_text("")
    assert missing(tmp_path, "from spin_sdk import http\n", vendor) is None
    assert missing(tmp_path, "from spin_sdk import http\n", tmp_path / "no such directory") is None
