"""Test helpers: real guest components built once per content hash, and running them."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from wasmtime import wat2wasm

from wasikv import Host
from wasikv.build.guest_build import COMMAND_WORLD, build_cached, componentize

from . import background

ROOT = Path(__file__).resolve().parent.parent
GUESTS = ROOT / "tests" / "guests"
CACHE = ROOT / ".wasikv-test"
COMPILE_CACHE = CACHE / "compiled"


#: Set by `make test-fast`: building (or even using) a guest component is an error.
NO_BUILD = "WASIKV_TEST_NO_BUILD"
#: The helpers that build guests: tests/conftest.py marks every test reaching them `component`.
BUILDERS = frozenset(
    {
        "guest_wasm",
        "foreign_guest_wasm",
        "build_cached",
        "componentize",
        # tests/wasi_http_support.py: components of other toolchains.
        "spin_python_app",
        "spin_js_app",
        "proxy_guest",
        "componentize_js_app",
    }
)


def refuse_builds() -> None:
    """Fail loudly when a test builds a guest under `make test-fast` (it is missing its `component` mark)."""
    if os.environ.get(NO_BUILD):
        raise RuntimeError(
            f"{NO_BUILD} is set (make test-fast) but this test uses a guest component: "
            "mark it @pytest.mark.component"
        )


def guest_wasm(name: str, world: str = COMMAND_WORLD, module: str = "app") -> Path:
    """The component for tests/guests/<name> (or a repo-relative directory), built once per content."""
    refuse_builds()
    return background.once(guest_key(name, world, module), lambda: build_guest(name, world, module))


def guest_key(name: str, world: str = COMMAND_WORLD, module: str = "app") -> tuple[str, ...]:
    """The `background` key of `guest_wasm(name, world, module)`."""
    return ("guest", name, world, module)


def build_guest(name: str, world: str, module: str) -> Path:
    """Build (or find built) what `guest_wasm` returns, now, on this thread."""
    app_dir = GUESTS / name if "/" not in name else ROOT / name
    return build_cached(app_dir, CACHE / "guests", world=world, module=module)


FOREIGN_WIT = ROOT / "tests" / "wit"


_KEYVALUE_PACKAGE = re.compile(r"package wasi:keyvalue@([^;]+);")


def foreign_guest_wasm(*keyvalue: str, relabel: str | None = None, name: str = "foreign") -> Path:
    """Build tests/guests/<name> against the foreign keyvalue WITs tests/wit/<keyvalue>...

    The WIT tree is those packages (the version of the first replaced by
    `relabel`, for a guest that lies about its types), wasikv's vendored WASI
    0.2.0 packages and the guest's own `world.wit` (its one world), whose
    KEYVALUE_VERSION becomes the first package's version. The app imports its
    bindings as `wit_world`. Built once per content, like `guest_wasm`.
    """
    refuse_builds()
    return background.once(
        foreign_key(*keyvalue, relabel=relabel, name=name),
        lambda: build_foreign_guest(keyvalue, relabel, name),
    )


def foreign_key(*keyvalue: str, relabel: str | None = None, name: str = "foreign") -> tuple[str | None, ...]:
    """The `background` key of `foreign_guest_wasm(*keyvalue, relabel=relabel, name=name)`."""
    return ("foreign", name, relabel, *keyvalue)


def build_foreign_guest(keyvalue: tuple[str, ...], relabel: str | None, name: str) -> Path:
    """Build (or find built) what `foreign_guest_wasm` returns, now, on this thread."""
    app_dir = GUESTS / name
    packages = [FOREIGN_WIT / package for package in keyvalue]
    digest = hashlib.sha256(f"{keyvalue};{relabel}".encode())
    for path in sorted(p for d in (app_dir, *packages) for p in d.iterdir()):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    label = "+".join(keyvalue) + (f"-as-{relabel}" if relabel else "")
    target = CACHE / "guests" / f"{name}-{label}-{digest.hexdigest()[:20]}.wasm"
    if target.exists():
        return target
    found = _KEYVALUE_PACKAGE.search((packages[0] / "world.wit").read_text())
    assert found is not None, f"{packages[0]}/world.wit declares no wasi:keyvalue package"
    version = relabel or found.group(1)
    world_source = (app_dir / "world.wit").read_text()
    world = re.search(r"^world (\S+) \{", world_source, re.MULTILINE)
    assert world is not None, f"{app_dir}/world.wit has no world"
    with tempfile.TemporaryDirectory() as scratch:
        wit = Path(scratch) / "wit"
        for dep in (ROOT / "wit" / "deps").iterdir():
            if dep.name != "keyvalue":
                shutil.copytree(dep, wit / "deps" / dep.name)
        for index, package in enumerate(packages):
            (wit / "deps" / f"keyvalue-{index}").mkdir()
            for source in package.glob("*.wit"):
                text = source.read_text()
                if index == 0:
                    text = _KEYVALUE_PACKAGE.sub(f"package wasi:keyvalue@{version};", text)
                (wit / "deps" / f"keyvalue-{index}" / source.name).write_text(text)
        (wit / "world.wit").write_text(world_source.replace("KEYVALUE_VERSION", version))
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        componentize(app_dir, partial, world=world.group(1), wit=wit)
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


#: A `wasi:cli/run` component without Python (nor WASI): `run` returns ok, or err when the
#: core function returns 1. It compiles in milliseconds where a componentize-py guest takes
#: seconds: for the tests of what happens around a compile (the cache, progress displays).
_TINY_COMMAND = """
(component
  (core module $m (func (export "run") (result i32) i32.const {code}))
  (core instance $i (instantiate $m))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $run-instance (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $run-instance))
)
"""


def tiny_command(fails: bool = False) -> bytes:
    """A command component that compiles in milliseconds and exits 0 (1 if `fails`)."""
    return bytes(wat2wasm(_TINY_COMMAND.format(code=int(fails))))


#: The command guests of tests/guests/suite, whose argv[1] names one of them.
COMMAND_GUESTS = frozenset({"probe", "conformance", "sdk", "primitives"})


def suite_wasm() -> Path:
    """tests/guests/suite: a command (`COMMAND_GUESTS`, or hostile.py's misbehaviours), an HTTP
    handler (http_probe.py; hostile.py under `/hostile/`) and a watcher (watch_probe.py; hostile.py
    for keys under `hostile/`)."""
    return guest_wasm("suite", "wasikv:app/sdk")


def conformance_in_processes(store_url: str, scenario: str, count: int, processes: int = 4) -> list[Any]:
    """The conformance guest's `SCENARIO COUNT` in `processes` `wasikv run` processes at once on
    the store at `store_url`: each one's JSON report (each must exit 0)."""
    command = [sys.executable, "-m", "wasikv", "run", "--store", f"default={store_url}", str(suite_wasm())]
    running = [
        subprocess.Popen(
            [*command, "conformance", scenario, str(count)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "WASIKV_CACHE_DIR": str(COMPILE_CACHE)},
        )
        for _ in range(processes)
    ]
    reports = []
    for proc in running:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return reports


def run_in(host: Host, name: str, args: Iterable[str] = (), grants: Iterable[str] | None = None) -> GuestRun:
    """Run guest `name` (of `COMMAND_GUESTS`, or in tests/guests) on `host`, capturing its output."""
    out, err = io.BytesIO(), io.BytesIO()
    if name in COMMAND_GUESTS:
        wasm, argv = suite_wasm(), [name, *args]
    else:
        wasm, argv = guest_wasm(name), list(args)
    code = host.run(wasm, argv, grants=grants, stdout=out, stderr=err)
    return GuestRun(
        code, out.getvalue().decode("utf-8", "replace"), err.getvalue().decode("utf-8", "replace")
    )


def toolchain_digest(*parts: str) -> str:
    """A hash of `parts` and of everything a `wasikv build` or `componentize` run depends on.

    That is wasikv's own sources (the CLI, the build pipeline and the
    templates), the SDK's, and componentize-py's version: a CLI build whose
    inputs hash the same gives the same result, so the suite keeps it across
    runs (`built_once`) and redoes it after any edit to those.
    """
    digest = hashlib.sha256(f"componentize-py={version('componentize-py')}".encode())
    for part in parts:
        digest.update(len(part).to_bytes(8, "big") + part.encode())
    for root in (ROOT / "host" / "wasikv", ROOT / "guest" / "wasikv_sdk"):
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(ROOT)).encode() + path.read_bytes())
    return digest.hexdigest()[:20]


def built_once(kind: str, digest: str, build: Callable[[Path], None]) -> Path:
    """`.wasikv-test/<kind>/<digest>`, made by `build(directory)` unless an earlier run made it.

    Built in place (components record their source directory), and marked
    complete only once `build` returns.
    """
    target = CACHE / kind / digest
    complete = target / ".complete"
    if not complete.exists():
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        build(target)
        complete.touch()
    return target
