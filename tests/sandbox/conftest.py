"""Fixtures of the hostile-guest suite: one misbehaving component for every trigger."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..support import COMPILE_CACHE, foreign_guest_wasm, suite_wasm


def start_wasikv(*args: str, cwd: Path) -> subprocess.Popen[str]:
    """`python -m wasikv ARGS` started in `cwd` with the test compile cache, output captured."""
    return subprocess.Popen(
        [sys.executable, "-m", "wasikv", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "WASIKV_CACHE_DIR": str(COMPILE_CACHE)},
    )


def run_wasikv(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`python -m wasikv ARGS` run to its end: (return code, stdout, stderr)."""
    proc = start_wasikv(*args, cwd=cwd)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture(scope="session")
def hostile_wasm() -> Path:
    """tests/guests/suite, whose hostile.py misbehaves on request (see its docstring)."""
    return suite_wasm()


@pytest.fixture(scope="session")
def mistyped_wasm() -> Path:
    """A component importing the 0.2.0-draft shapes under wasikv's draft2 interface names."""
    return foreign_guest_wasm("keyvalue-0.2.0-draft", relabel="0.2.0-draft2")


#: An app of one component, the hostile guest, serving `/hostile/...`.
HOSTILE_MANIFEST = """\
spin_manifest_version = 2
[application]
name = "hostile"

[[trigger.http]]
route = "/hostile/..."
component = "hostile"

[component.hostile]
source = "hostile.wasm"
key_value_stores = ["default"]
"""


@pytest.fixture(params=["fresh-instances", "instance-reuse"])
def app_dir(hostile_wasm: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """A directory holding the hostile app (`HOSTILE_MANIFEST`) and its component.

    Every test using it runs twice: with a fresh instance per request, and
    with the hostile component's instances reused (`instance_reuse = true`).
    """
    shutil.copy(hostile_wasm, tmp_path / "hostile.wasm")
    reuse = "instance_reuse = true\n" if request.param == "instance-reuse" else ""
    (tmp_path / "wasikv.toml").write_text(HOSTILE_MANIFEST + reuse)
    return tmp_path
