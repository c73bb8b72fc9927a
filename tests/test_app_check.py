"""wasikv.app_check: the export class an app certainly lacks, told before componentize-py runs.

The check must never refuse an app that would build: every way a module
can bind a name is either seen or makes the check stand aside.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from wasikv.app_check import missing_class


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
