"""Building Python guests into components with componentize-py."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from importlib.metadata import version
from pathlib import Path

from ..errors import ComponentError
from ..runtime.guest_errors import (
    PATHS_SECTION,
    WORLD_CLASSES,
    custom_section,
    explain_build_failure,
)
from .app_check import missing_class, missing_import
from .guest_packages import REQUIREMENTS_NAME, guest_packages

#: The world command guests target.
COMMAND_WORLD = "wasikv:app/command"


def sdk_path() -> Path:
    """The directory that contains the `wasikv_sdk` package."""
    import wasikv_sdk

    return Path(wasikv_sdk.__file__).resolve().parent.parent


def _componentize_py() -> str:
    beside = Path(sys.executable).with_name("componentize-py")
    found = str(beside) if beside.exists() else shutil.which("componentize-py")
    if found is None:
        raise ComponentError("componentize-py is not installed (pip install componentize-py==0.25.1)")
    return found


def componentize(
    app_dir: str | Path,
    output: str | Path,
    *,
    module: str = "app",
    world: str = COMMAND_WORLD,
    python_path: Iterable[str | Path] = (),
    wit: str | Path | None = None,
    on_note: Callable[[str], None] | None = None,
) -> Path:
    """Build `app_dir/<module>.py` into a component at `output`.

    The SDK's directory is put on componentize-py's path, so this works
    whether wasikv is installed normally or in editable mode. With `wit` (a
    WIT directory holding `world`), the app is built against that WIT
    instead, without the SDK, and imports its bindings as `wit_world`.
    The packages in `app_dir/requirements.txt` are installed for the guest
    and put on the path too (`wasikv.build.guest_packages`); `on_note` gets
    a line for each requirement skipped.
    """
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    paths = [Path(p).resolve() for p in ([] if wit is not None else [sdk_path()])]
    paths += [Path(p).resolve() for p in (app_dir, *python_path)]
    packages = guest_packages(app_dir, on_note=on_note)
    if packages is not None:
        paths.append(packages.directory)
    source = Path(app_dir) / f"{module}.py"
    app = str(source)
    said = _certain_failure(source, module, world, paths) if wit is None else None
    if said is not None:
        # Said at once rather than by componentize-py seconds later, in the same words.
        raise ComponentError(
            explain_build_failure(
                said, app=app, module=module, world=world, python_path=paths, custom_wit=False
            )
        )
    target = ["-w", world] if wit is None else ["-d", str(wit), "-w", world]
    command = [_componentize_py(), *target, "componentize"]
    for path in paths:
        command += ["-p", str(path)]
    command += [module, "-o", str(output)]
    # A virtualenv's site-packages may hold another SDK's componentize-py.toml.
    # componentize-py's own Rust backtrace says nothing about the app.
    hidden = {"VIRTUAL_ENV", "RUST_BACKTRACE", "RUST_LIB_BACKTRACE"}
    env = {k: v for k, v in os.environ.items() if k not in hidden}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise ComponentError(
            explain_build_failure(
                done.stderr or done.stdout,
                app=app,
                module=module,
                world=world,
                python_path=paths,
                custom_wit=wit is not None,
            )
        )
    # Guest tracebacks name files by their index in this path (`/1/app.py`).
    with output.open("ab") as component:
        component.write(custom_section(PATHS_SECTION, json.dumps([str(p) for p in paths]).encode()))
    return output


def _certain_failure(source: Path, module: str, world: str, paths: list[Path]) -> str | None:
    """The error componentize-py would report for the app, if its source tells it for sure.

    In the order the guest's Python meets them: importing the module (a
    `spin_sdk` import, the usual first step of a Spin port), then looking
    up the class the world calls.
    """
    found = missing_import(source, "spin_sdk", paths)
    if found is not None:
        line, text = found
        return (
            f'  File "{source.resolve()}", line {line}\n    {text.strip()}\n'
            "ModuleNotFoundError: No module named 'spin_sdk'"
        )
    if world in WORLD_CLASSES:
        name = WORLD_CLASSES[world][0]
        if missing_class(source, name):
            return f"AttributeError: module '{module}' has no attribute '{name}'"
    return None


def source_digest(app_dir: str | Path, world: str = COMMAND_WORLD) -> str:
    """A hash of everything a build depends on: the app, the SDK, the toolchain (this builder too)."""
    digest = hashlib.sha256(f"{world};componentize-py={version('componentize-py')}".encode())
    # How a component is built (the custom section componentize appends, say) is part of it.
    for builder in (Path(__file__), Path(__file__).parents[1] / "runtime" / "guest_errors.py"):
        digest.update(builder.read_bytes())
    roots = [Path(app_dir), sdk_path() / "wasikv_sdk"]
    for root in roots:
        for path in sorted(root.rglob("*")):
            relative = path.relative_to(root)
            if any(part == "__pycache__" or part.startswith(".") for part in relative.parts[:-1]):
                continue  # caches, and the packages requirements.txt installs (named by its hash)
            if path.is_file() and (path.suffix in {".py", ".wit", ".toml"} or path.name == REQUIREMENTS_NAME):
                digest.update(str(relative).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def build_cached(
    app_dir: str | Path, cache_dir: str | Path, *, world: str = COMMAND_WORLD, module: str = "app"
) -> Path:
    """Build `app_dir` unless a component for exactly these sources is in `cache_dir`."""
    app_dir = Path(app_dir)
    digest = source_digest(app_dir, f"{world};{module}")[:20]
    target = Path(cache_dir) / f"{app_dir.name}-{module}-{digest}.wasm"
    if not target.exists():
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        componentize(app_dir, partial, world=world, module=module)
        partial.replace(target)
    return target
