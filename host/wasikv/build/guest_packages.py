"""A guest's packages from PyPI: its `requirements.txt`, installed where only its build sees them.

componentize-py bundles the Python code it finds on its path (`-p`) into
the component. An app directory with a `requirements.txt` gets its packages
installed with pip (`pip install --target`) into
`<app>/.wasikv/packages/<hash>/`, which the build puts on that path: never
into wasikv's own environment, and again only when the requirements (or the
guest's Python) change.

A guest is CPython compiled to WebAssembly: it runs pure Python code only.
pip is asked for wheels tagged `py3-none-any` for the guest's Python, so a
package that has none (it compiles code, or is published only as a source
archive) is an error naming it, before any build starts.

A ported Spin app's `requirements.txt` pins `spin-sdk` and
`componentize-py`: those lines are skipped with a note (`wasikv_sdk.spin`
has spin_sdk's modules; the build brings its own componentize-py).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import ComponentError

__all__ = ["GUEST_PYTHON", "PACKAGES_DIR", "REQUIREMENTS_NAME", "SKIPPED", "GuestPackages", "guest_packages"]

#: The file listing a guest's packages, next to its module.
REQUIREMENTS_NAME = "requirements.txt"
#: The CPython that componentize-py (0.25.1, pinned by wasikv) builds into a guest.
GUEST_PYTHON = "3.14"
#: Where the installed packages go, relative to the app directory (hidden: no watch glob sees it).
PACKAGES_DIR = Path(".wasikv") / "packages"

#: Requirements a guest never installs, with why (names normalized as PEP 503 does).
SKIPPED = {
    "spin-sdk": "wasikv_sdk.spin has spin_sdk's modules",
    "componentize-py": "the build runs wasikv's own componentize-py",
    "wasikv": "wasikv_sdk is on the build's path already",
}
# pip options that name other files or local projects: their contents would escape the hash.
_REFUSED_OPTIONS = ("-r", "--requirement", "-c", "--constraint", "-e", "--editable")
_NAME = re.compile(r"([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")
_NOT_FOUND = re.compile(r"No matching distribution found for (\S+)")
# Asks pip for wheels a guest can run: pure Python, for the guest's CPython.
_PURE_WHEELS = (
    "--only-binary=:all:",
    "--implementation=py",
    "--abi=none",
    "--platform=any",
    f"--python-version={GUEST_PYTHON}",
)


@dataclass(frozen=True)
class GuestPackages:
    """An app's installed packages: `directory` goes on componentize-py's path.

    `notes` says which requirements were skipped, and why.
    """

    directory: Path
    notes: tuple[str, ...] = ()


def guest_packages(
    app_dir: str | Path, *, on_note: Callable[[str], None] | None = None
) -> GuestPackages | None:
    """Install `app_dir/requirements.txt` for the guest (unless done for the same lines); None without one.

    Each skipped requirement is reported to `on_note` as one line. A
    requirement without a pure-Python wheel, an unsupported line or a pip
    failure raises `ComponentError` naming it.
    """
    app_dir = Path(app_dir).resolve()
    requirements = app_dir / REQUIREMENTS_NAME
    if not requirements.is_file():
        return None
    lines, notes = _read(requirements)
    if on_note is not None:
        for note in notes:
            on_note(note)
    digest = hashlib.sha256(json.dumps([GUEST_PYTHON, _PURE_WHEELS, lines]).encode()).hexdigest()[:16]
    root = app_dir / PACKAGES_DIR
    target = root / digest
    if not (target / ".complete").is_file():
        _install(requirements, lines, root, target)
    return GuestPackages(target, tuple(notes))


def _read(requirements: Path) -> tuple[list[str], list[str]]:
    """The lines pip installs and the notes on those skipped; `ComponentError` for a line refused."""
    try:
        text = requirements.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ComponentError(f"{requirements}: cannot read it ({exc})") from None
    kept: list[str] = []
    notes: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*", "", raw).strip()
        if not line:
            continue
        if line.startswith(_REFUSED_OPTIONS):  # `-r file`, `-rfile`, `--requirement=file`...
            raise ComponentError(
                f"{requirements}, line {number}: `{line}` is not supported for a guest; list the "
                "packages themselves in this file"
            )
        found = _NAME.match(line)
        name = re.sub(r"[-_.]+", "-", found.group(1)).lower() if found and not line.startswith("-") else None
        if name in SKIPPED:
            notes.append(f"{requirements.name}: skipping `{line}` ({SKIPPED[name]})")
            continue
        kept.append(line)
    return kept, notes


def _install(requirements: Path, lines: list[str], root: Path, target: Path) -> None:
    """pip-install `lines` (from `requirements`) into `target`, replacing the app's older installs."""
    root.mkdir(parents=True, exist_ok=True)
    partial = root / f"{target.name}.{os.getpid()}.tmp"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    listed = partial / ".requirements.txt"
    listed.write_text("".join(f"{line}\n" for line in lines), "utf-8")
    if lines:
        command = [sys.executable, "-m", "pip", "install", "--target", str(partial), *_PURE_WHEELS]
        command += ["--no-compile", "--disable-pip-version-check", "--no-input", "-r", str(listed)]
        done = subprocess.run(command, cwd=requirements.parent, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            shutil.rmtree(partial, ignore_errors=True)
            raise ComponentError(_pip_failure(requirements, done.stdout + done.stderr))
    (partial / ".complete").touch()
    for old in root.iterdir():
        if old != partial:
            shutil.rmtree(old, ignore_errors=True)
    partial.replace(target)


def _pip_failure(requirements: Path, output: str) -> str:
    """What went wrong, in one message, from pip's output."""
    missing = _NOT_FOUND.search(output)
    if missing is not None:
        return (
            f"{requirements}: no pure-Python wheel of {missing.group(1)} for the guest's Python "
            f"{GUEST_PYTHON}: a guest runs only pure-Python packages (wheels tagged py3-none-any); "
            "remove it, or pin a version that has such a wheel"
        )
    if "No module named pip" in output:
        return (
            f"{requirements}: installing a guest's packages needs pip in wasikv's Python "
            f"({sys.executable} -m pip); install pip there"
        )
    errors = [line for line in output.splitlines() if line.startswith("ERROR:")]
    detail = errors[-1] if errors else (output.strip().splitlines() or ["(no output)"])[-1]
    return f"{requirements}: pip could not install the guest's packages: {detail}"
