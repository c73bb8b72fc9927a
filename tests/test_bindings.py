"""The SDK's generated WIT copy and binding stubs match wit/."""

from __future__ import annotations

import subprocess
import sys

from .support import ROOT


def test_checked_in_bindings_are_in_sync_with_wit() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "bindings.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
