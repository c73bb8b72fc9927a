"""Small sandbox items: deeply nested inputs, Ctrl-C at start-up, a guest that sleeps past
--timeout, a MemoryError with no memory left to print it, and `wasikv cache prune` on strays."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import wasikv
from wasikv.app.manifest import load_manifest
from wasikv.app.runtime_config import load_runtime_config
from wasikv.build.guest_build import PATHS_SECTION
from wasikv.build.state import load_state
from wasikv.runtime.guest_errors import GuestStderr, custom_section, python_path_of
from wasikv.triggers.watch.positions import read_old_cursor

from ..support import tiny_command
from .conftest import run_wasikv, start_wasikv

# ------------------------------------------------------------ deeply nested inputs

DEPTH = 100_000
#: Nested arrays, and nested inline tables: tomllib recurses into both.
NESTED = {
    "arrays": "x = " + "[" * DEPTH + "]" * DEPTH + "\n",
    "inline-tables": "x = " + "{a = " * DEPTH + "1" + "}" * DEPTH + "\n",
}


@pytest.mark.parametrize("shape", sorted(NESTED))
def test_a_deeply_nested_manifest_is_one_error_line(tmp_path: Path, shape: str) -> None:
    manifest = tmp_path / "wasikv.toml"
    manifest.write_text(f'spin_manifest_version = 2\n[application]\nname = "deep"\n{NESTED[shape]}')
    done = run_wasikv("build", "-f", str(manifest), cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "RecursionError" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"Error: {manifest}: ") and "nested too deeply" in lines[0]


@pytest.mark.parametrize("shape", sorted(NESTED))
def test_deeply_nested_toml_is_a_config_error_in_the_python_api(tmp_path: Path, shape: str) -> None:
    manifest = tmp_path / "wasikv.toml"
    manifest.write_text(NESTED[shape])
    with pytest.raises(wasikv.ConfigError, match="nested too deeply") as raised:
        load_manifest(manifest)
    assert str(raised.value).startswith(f"{manifest}: ")
    runtime_config = tmp_path / "runtime-config.toml"
    runtime_config.write_text(f"[key_value_store.default]\n{NESTED[shape]}")
    with pytest.raises(wasikv.ConfigError, match="nested too deeply") as raised:
        load_runtime_config(runtime_config, manifest_dir=tmp_path)
    assert str(raised.value).startswith(f"{runtime_config}: ")


def test_deeply_nested_json_inputs_are_refused_not_raised(tmp_path: Path) -> None:
    deep = "[" * DEPTH + "]" * DEPTH
    # The Python path recorded in a component (read to show guest tracebacks).
    assert python_path_of(tiny_command() + custom_section(PATHS_SECTION, deep.encode())) is None
    assert python_path_of(tiny_command() + custom_section(PATHS_SECTION, b"[1]")) is None
    # `wasikv build`'s state file: unreadable state means "build again".
    state = tmp_path / "build-state.json"
    state.write_text('{"version": 1, "components": ' + deep + "}")
    assert load_state(state) == {}
    # An old watch cursor file (at most 4 KiB, deep enough all the same).
    cursor = tmp_path / "cursor.json"
    cursor.write_text("[" * 2000 + "]" * 2000)
    with pytest.raises(wasikv.ConfigError, match=f"old watch cursor file {cursor} is not valid JSON"):
        read_old_cursor(cursor)


# ------------------------------------------------------------ Ctrl-C at start-up

#: `wasikv ARGS` that stops, as if slow, when it first imports MODULE, and says so on stdout:
#: a Ctrl-C then lands in wasikv's start-up at a known point.
_PAUSED_START = """
import importlib.abc, sys, time

MODULE = sys.argv[1]

class Pause(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == MODULE:
            sys.meta_path.remove(self)
            print("paused", flush=True)
            time.sleep(120)
        return None

sys.meta_path.insert(0, Pause())
sys.argv = ["wasikv", *sys.argv[2:]]
from wasikv.cli.launcher import main
main()
"""


def _interrupted_at_start(tmp_path: Path, module: str, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _PAUSED_START, module, *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        # Whatever the process printed before it paused is kept; it never
        # pauses only if it ended (EOF) first.
        before: list[str] = []
        while (line := proc.stdout.readline()) not in ("paused\n", ""):
            before.append(line)
        if line != "paused\n":
            proc.kill()
            raise AssertionError(f"never paused at {module}: {before} {proc.communicate(timeout=60)}")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        out = "".join(before) + out
    finally:
        proc.kill()
        proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.parametrize(
    ("module", "args"),
    [
        ("wasikv.cli.main", ["kv", "--help"]),  # the launcher loading the command line
        ("wasikv.cli.kv", ["kv", "--help"]),  # the command line loading a subcommand
        ("wasikv.host", ["run", "app.wasm"]),  # `run` loading wasmtime and the host
        ("wasikv.server.asgi", ["up"]),  # `up` loading the server
    ],
    ids=["launcher", "subcommand", "run", "up"],
)
def test_ctrl_c_during_start_up_exits_130(tmp_path: Path, module: str, args: list[str]) -> None:
    done = _interrupted_at_start(tmp_path, module, *args)
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr and "Aborted" not in done.stderr, done.stderr


def test_ctrl_c_while_run_waits_for_a_silent_store_exits_130(tmp_path: Path) -> None:
    """Ctrl-C while `run` seeds its store, before the guest starts: a server that never answers."""
    pytest.importorskip("redis")
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(60)
        port = server.getsockname()[1]
        store = f"default=redis://127.0.0.1:{port}/0?socket_timeout=120&connect_timeout=60"
        proc = start_wasikv("run", "--store", store, "--key-value", "k=v", "app.wasm", cwd=tmp_path)
        try:
            connection, _ = server.accept()
            with connection:
                connection.settimeout(60)
                assert connection.recv(1024), "the store sent its first command"
                proc.send_signal(signal.SIGINT)
                _, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Aborted" not in err, err


# ------------------------------------------------------------ --timeout and a sleeping guest


@pytest.mark.component
def test_run_gives_up_on_a_sleeping_guest_a_second_after_its_timeout(
    hostile_wasm: Path, tmp_path: Path
) -> None:
    # The guest sleeps in a host call, where epochs cannot stop it: `run` stops waiting a
    # second after --timeout, and then exits at once, leaving the guest's thread behind.
    proc = start_wasikv("run", "--timeout", "2", str(hostile_wasm), "sleep", cwd=tmp_path)
    try:
        assert proc.stderr is not None
        said = proc.stderr.readline()
        told = time.monotonic()
        rest = proc.stderr.read()
        proc.wait(timeout=60)
        exited = time.monotonic()
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 124, said + rest
    assert said.startswith(f"Error: {hostile_wasm}: stopped after the --timeout of 2 s"), said + rest
    assert "blocked in a host call" in said
    assert not rest.strip(), rest
    # It used to wait another second for the abandoned guest's output callbacks.
    assert exited - told < 0.75


# ------------------------------------------------------------ MemoryError

#: What CPython prints for an uncaught exception it has no memory left to format
#: (_PyObject_Dump, then "lost sys.stderr"): a real guest's output, after the
#: traceback's first line (the red team's) or alone (tests/guests/suite's `oom`).
_DUMP = (
    b"object address  : 0x489058\n"
    b"object refcount : 2\n"
    b"object type     : 0x373230\n"
    b"object type name: MemoryError\n"
    b"object repr     : \n"
    b"lost sys.stderr\n"
    b"\n"
    b"thread '<unnamed>' (1) panicked at runtime/src/lib.rs:1293:29:\n"
    b"Python function threw an unexpected exception\n"
    b"note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n"
)


class _Sink:
    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)

    def flush(self) -> None:
        pass


@pytest.mark.parametrize(
    "before", [b"", b"Traceback (most recent call last):\n"], ids=["alone", "in-traceback"]
)
def test_a_memory_error_too_big_to_print_is_named(before: bytes) -> None:
    sink = _Sink()
    stderr = GuestStderr(sink, lambda: None)  # type: ignore[arg-type]
    for line in (before + _DUMP).splitlines(keepends=True):
        stderr.write(line)
    stderr.finish()
    assert stderr.exception == "MemoryError"
    assert stderr.panic == "Python function threw an unexpected exception"
    # CPython's object dump and the runtime's panic are not shown: one line says what happened.
    assert sink.data == before + b"MemoryError (no memory was left to print its traceback)\n"


def test_a_memory_error_dump_is_shown_as_it_came_with_verbose() -> None:
    sink = _Sink()
    stderr = GuestStderr(sink, lambda: None, verbose=True)  # type: ignore[arg-type]
    stderr.write(_DUMP)
    stderr.finish()
    assert stderr.exception == "MemoryError"
    assert sink.data == _DUMP


@pytest.mark.component
def test_run_names_a_memory_error_with_no_memory_left(hostile_wasm: Path, tmp_path: Path) -> None:
    # How much memory the guest finds left when its last allocation fails depends on the
    # cap and on the build of the guest: under some caps it prints CPython's object dump,
    # under others nothing at all. Whichever it does, the report names the MemoryError.
    # (test_a_memory_error_too_big_to_print_is_named parses the dump itself, on its own.)
    for cap in ("32", "24", "28", "36"):
        done = run_wasikv("run", "--max-memory", cap, str(hostile_wasm), "oom", cwd=tmp_path)
        assert done.returncode == 1
        if done.stderr.startswith("MemoryError"):
            assert done.stderr.splitlines() == [
                "MemoryError (no memory was left to print its traceback)",
                "Error: component trapped: the guest raised MemoryError",
            ], done.stderr
        else:
            assert done.stderr.splitlines() == [
                "Error: component trapped: the guest raised an exception it could not print, most likely "
                f"a MemoryError with no memory left (it may use {cap} MiB: --max-memory)"
            ], done.stderr
