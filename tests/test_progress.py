"""Progress of long steps: shown on a terminal's stderr, silenced by --quiet, absent from pipes.

Real compiles in real `wasikv` processes, of a component that compiles in milliseconds
(the display does not depend on how long the compile takes).
"""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from wasikv.build.display import Display
from wasikv.cli.progress import step

from .support import tiny_command

COMPILED = re.compile(r"compiling app\.wasm \(first run only\)\.\.\. \d+\.\d s")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _env(tmp_path: Path) -> dict[str, str]:
    # A fresh compile cache, so the component really compiles.
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "WASIKV_CACHE_DIR": str(tmp_path / "compiled"),
        "TERM": "xterm-256color",
        "COLUMNS": "120",
    }


def run_on_terminal(*args: str, cwd: Path) -> tuple[int, str, str]:
    """`wasikv ARGS` with stderr on a pseudo-terminal: exit status, stdout, stderr (no ANSI codes)."""
    leader, follower = pty.openpty()
    with (cwd / "stdout").open("w+") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "wasikv", *args],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=follower,
            env=_env(cwd),
        )
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(leader)
        code = process.wait(timeout=120)
        out.seek(0)
        stdout = out.read()
    return code, stdout, ANSI.sub("", b"".join(chunks).decode("utf-8", "replace"))


def app_in(directory: Path) -> str:
    """A command component in `directory`, as app.wasm (its name in the progress line)."""
    wasm = directory / "app.wasm"
    wasm.write_bytes(tiny_command())
    return str(wasm)


def test_first_compile_shows_on_a_terminal_then_not_again(tmp_path: Path) -> None:
    app = app_in(tmp_path)
    code, stdout, stderr = run_on_terminal("run", "--store", "default=memory:", app, cwd=tmp_path)
    assert (code, stdout) == (0, ""), stderr
    assert COMPILED.search(stderr), stderr
    code, _, again = run_on_terminal("run", "--store", "default=memory:", app, cwd=tmp_path)
    assert code == 0, again
    assert "compiling" not in again  # from the cache now


def test_quiet_on_a_terminal_and_any_pipe_show_no_progress(tmp_path: Path) -> None:
    app = app_in(tmp_path)
    code, stdout, stderr = run_on_terminal(
        "run", "--quiet", "--no-cache", "--store", "default=memory:", app, cwd=tmp_path
    )
    assert (code, stdout, stderr) == (0, "", "")
    piped = subprocess.run(
        [sys.executable, "-m", "wasikv", "run", "--no-cache", "--store", "default=memory:", app],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(tmp_path),
    )
    assert (piped.returncode, piped.stdout, piped.stderr) == (0, "", "")


def test_step_shows_the_elapsed_time_and_a_failure() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    with step(console, "componentize app -> app.wasm"):
        pass
    with pytest.raises(RuntimeError), step(console, "compiling app.wasm (first run only)"):
        raise RuntimeError("boom")
    text = ANSI.sub("", out.getvalue())
    assert re.search(r"componentize app -> app\.wasm\.\.\. \d+\.\d s\n", text), text
    assert re.search(r"compiling app\.wasm \(first run only\)\.\.\. failed after \d+\.\d s\n", text), text
    with step(None, "nothing shown"):
        pass


def test_build_display_live_on_stderr_plain_on_a_piped_stdout() -> None:
    stdout, stderr = io.StringIO(), io.StringIO()
    live = Console(file=stderr, force_terminal=True, width=100)
    with Display(Console(file=stdout, force_terminal=False), ["web"], live_console=live) as display:
        display.update("web", "building", "building")
        display.update("web", "done", "done in 1.0 s")
    assert stdout.getvalue() == "web: building\nweb: done in 1.0 s\n"
    assert "done in 1.0 s" in stderr.getvalue()
    quiet = io.StringIO()
    with Display(Console(file=quiet, force_terminal=True), ["web"], quiet=True) as display:
        display.update("web", "building", "building")
        display.update("web", "done", "done in 1.0 s")
    assert quiet.getvalue() == "web: done in 1.0 s\n"
