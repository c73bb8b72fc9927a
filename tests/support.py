"""Test helpers: real guest components built once per content hash, and running them."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wasikv import Host
from wasikv.guest_build import COMMAND_WORLD, build_cached

ROOT = Path(__file__).resolve().parent.parent
GUESTS = ROOT / "tests" / "guests"
CACHE = ROOT / ".wasikv-test"
COMPILE_CACHE = CACHE / "compiled"


def guest_wasm(name: str, world: str = COMMAND_WORLD, module: str = "app") -> Path:
    """The component for tests/guests/<name> (or a repo-relative directory), built once per content."""
    app_dir = GUESTS / name if "/" not in name else ROOT / name
    return build_cached(app_dir, CACHE / "guests", world=world, module=module)


FOREIGN_WIT = ROOT / "tests" / "wit"


def foreign_guest_wasm(name: str, keyvalue: str, world: str, *, relabel: str | None = None) -> Path:
    """Build tests/guests/<name> against the foreign keyvalue WIT tests/wit/<keyvalue>.

    The WIT tree is that package (its version replaced by `relabel` if
    given), wasikv's vendored WASI 0.2.0 packages and the guest's own
    `world.wit`; the app imports its bindings as `wit_world`. Built once per
    content, like `guest_wasm`.
    """
    app_dir = GUESTS / name
    package = FOREIGN_WIT / keyvalue
    digest = hashlib.sha256(f"{keyvalue};{world};{relabel}".encode())
    for path in sorted([*app_dir.iterdir(), *package.iterdir()]):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    target = CACHE / "guests" / f"{name}-{keyvalue}-{relabel or 'as-is'}-{digest.hexdigest()[:20]}.wasm"
    if target.exists():
        return target
    with tempfile.TemporaryDirectory() as scratch:
        wit = Path(scratch) / "wit"
        for dep in (ROOT / "wit" / "deps").iterdir():
            if dep.name != "keyvalue":
                shutil.copytree(dep, wit / "deps" / dep.name)
        (wit / "deps" / "keyvalue").mkdir()
        for source in package.glob("*.wit"):
            text = source.read_text()
            if relabel is not None:
                text = text.replace(
                    "package wasi:keyvalue@0.2.0-draft2;", f"package wasi:keyvalue@{relabel};"
                )
                text = text.replace("package wasi:keyvalue@0.2.0-draft;", f"package wasi:keyvalue@{relabel};")
            (wit / "deps" / "keyvalue" / source.name).write_text(text)
        shutil.copy(app_dir / "world.wit", wit / "world.wit")
        componentize_py = str(Path(sys.executable).with_name("componentize-py"))
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        partial.parent.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
        command = [componentize_py, "-d", str(wit), "-w", world, "componentize", "-p", str(app_dir)]
        done = subprocess.run(
            [*command, "app", "-o", str(partial)], capture_output=True, text=True, env=env, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"componentize-py failed for {name}:\n{done.stderr[-4000:]}")
        partial.replace(target)
    return target


@dataclass
class GuestRun:
    """What a guest run produced."""

    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """The last stdout line, parsed as JSON (guests report that way)."""
        lines = [line for line in self.stdout.splitlines() if line.strip()]
        assert lines, f"guest printed nothing; stderr:\n{self.stderr}"
        return json.loads(lines[-1])


def run_in(host: Host, name: str, args: Iterable[str] = (), grants: Iterable[str] | None = None) -> GuestRun:
    """Run guest `name` on `host`, capturing its output."""
    out, err = io.BytesIO(), io.BytesIO()
    code = host.run(guest_wasm(name), list(args), grants=grants, stdout=out, stderr=err)
    return GuestRun(
        code, out.getvalue().decode("utf-8", "replace"), err.getvalue().decode("utf-8", "replace")
    )
