"""Test helpers: real guest components built once per content hash, and running them."""

from __future__ import annotations

import io
import json
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
