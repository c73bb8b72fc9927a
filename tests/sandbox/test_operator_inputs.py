"""Files, URLs and keys an operator hands to wasikv, as a red team would.

- Named files (`kv set --file`, `--env-file`, manifests, runtime configs,
  components) that are FIFOs, devices or huge: refused at once with one
  `Error:` line naming the file (a FIFO used to hang; `/dev/zero` was read
  until the process was OOM-killed at 23.9 GB).
- Store URLs with `?password=` in the query: echoed whole in errors.
- Keys holding terminal escapes and newlines: printed raw by `kv list`.

The CLI runs in real processes, each with a timeout, so a regression that
blocks on a FIFO fails instead of hanging the suite.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from wasikv import Host
from wasikv.errors import ComponentError, ConfigError, KeyValueError, WasikvError
from wasikv.limits import MAX_COMPONENT_BYTES, MAX_CONFIG_FILE_BYTES, Limits
from wasikv.safe_files import read_regular_file
from wasikv.stores import open_store
from wasikv.stores.sqlite import SqliteStore, url_for_path

from ..support import COMPILE_CACHE
from ..test_up import free_port

MANIFEST = """\
spin_manifest_version = 2
[application]
name = "inputs"

[[trigger.http]]
route = "/..."
component = "web"

[component.web]
source = "web.wasm"
key_value_stores = ["default"]
"""

#: Subprocesses answer a refused file in about a second; this only catches a hang.
TIMEOUT = 60


def wasikv(*args: str, cwd: Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m wasikv ARGS` in `cwd`, killed (and the test failed) if it runs past `TIMEOUT`."""
    done = subprocess.run(
        [sys.executable, "-m", "wasikv", *args],
        cwd=cwd,
        input=stdin if stdin is not None else b"",
        capture_output=True,
        timeout=TIMEOUT,
        env={**os.environ, "WASIKV_CACHE_DIR": str(COMPILE_CACHE)},
    )
    return subprocess.CompletedProcess(
        done.args,
        done.returncode,
        done.stdout.decode("utf-8", "replace"),
        done.stderr.decode("utf-8", "replace"),
    )


def refused(done: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """Check `done` failed with exactly one line of output, an `Error:` holding every fragment."""
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """An app whose component is never reached: the refused input comes first."""
    directory = tmp_path / "app"
    directory.mkdir()
    (directory / "wasikv.toml").write_text(MANIFEST)
    (directory / "web.wasm").write_bytes(b"\0asm not a component")
    return directory


def sparse(path: Path, size: int) -> Path:
    """A file of `size` bytes that takes no disk space."""
    with path.open("wb") as file:
        file.truncate(size)
    return path


# -- the shared reader ---------------------------------------------------------------


@pytest.mark.timeout(TIMEOUT)
def test_special_files_are_refused_without_blocking(tmp_path: Path, fifo: Path) -> None:
    with closing(socket.socket(socket.AF_UNIX)) as server:
        server.bind(str(tmp_path / "sock"))
        cases = {
            fifo: "is a FIFO, not a regular file; the runtime config must be a regular file",
            Path("/dev/zero"): "is a device, not a regular file; the runtime config must be a regular file",
            tmp_path / "sock": "is a socket, not a regular file; the runtime config must be a regular file",
            tmp_path: "is a directory; name the runtime config itself",
        }
        for path, problem in cases.items():
            with pytest.raises(ConfigError) as caught:
                read_regular_file(path, 100, "runtime config")
            assert str(caught.value) == f"{path}: {problem}"


def test_sizes_are_capped_with_the_size_and_the_cap_in_the_message(tmp_path: Path) -> None:
    big = sparse(tmp_path / "big.toml", 5 << 20)
    with pytest.raises(ConfigError) as caught:
        read_regular_file(big, MAX_CONFIG_FILE_BYTES, "manifest")
    assert str(caught.value) == (
        f"{big}: the manifest is 5242880 bytes (5.0 MiB), more than the limit of 4194304 bytes (4.0 MiB)"
    )
    # A file whose size stat(2) does not tell: stopped at the cap while reading.
    with pytest.raises(
        ConfigError, match=r"/proc/self/status: the dotenv file holds more than the limit of 64"
    ):
        read_regular_file("/proc/self/status", 64, "dotenv file")
    exact = tmp_path / "exact"
    exact.write_bytes(b"x" * 64)
    assert read_regular_file(exact, 64, "value file") == b"x" * 64
    with pytest.raises(ComponentError, match=r"missing\.wasm: no such file; build it"):
        read_regular_file(
            tmp_path / "missing.wasm", 64, "component", error=ComponentError, missing_hint="build it"
        )


@pytest.mark.timeout(TIMEOUT)
def test_host_load_refuses_a_fifo_and_an_oversized_component(tmp_path: Path, fifo: Path) -> None:
    huge = sparse(tmp_path / "huge.wasm", MAX_COMPONENT_BYTES + 1)
    with Host({"default": "memory:"}, compile_cache=False) as host:
        with pytest.raises(ComponentError, match=f"{fifo}: is a FIFO, not a regular file"):
            host.load(fifo)
        with pytest.raises(
            ComponentError, match=r"huge\.wasm: the component is 536870913 bytes \(512\.0 MiB\)"
        ):
            host.load(huge)


# -- the command line ----------------------------------------------------------------


def test_kv_set_file_refuses_devices_fifos_and_oversized_values(tmp_path: Path, fifo: Path) -> None:
    url = url_for_path(tmp_path / "s.db")
    refused(
        wasikv("kv", "--store", url, "set", "k", "--file", "/dev/zero", cwd=tmp_path),
        "/dev/zero: is a device, not a regular file; the value file must be a regular file",
        "give --file - and redirect it to stdin",
    )
    refused(wasikv("kv", "--store", url, "set", "k", "--file", str(fifo), cwd=tmp_path), "is a FIFO")
    limit = Limits().max_value_bytes
    big = tmp_path / "big.bin"
    big.write_bytes(b"v" * (limit + 1))
    refused(
        wasikv("kv", "--store", url, "set", "k", "--file", str(big), cwd=tmp_path),
        f"{big}: the value file is 2097153 bytes (2.0 MiB), more than the limit of 2097152 bytes",
    )
    refused(
        wasikv("kv", "--store", url, "set", "k", "--file", "-", cwd=tmp_path, stdin=b"v" * (limit + 1)),
        "stdin: the value holds more than 2097152 bytes (2.0 MiB)",
    )
    # Nothing was written by the refused ones; a value of exactly the limit is fine.
    assert not (tmp_path / "s.db").exists()
    assert (
        wasikv("kv", "--store", url, "set", "k", "--file", "-", cwd=tmp_path, stdin=b"w" * limit).returncode
        == 0
    )
    exact = tmp_path / "exact.bin"
    exact.write_bytes(b"e" * limit)
    assert wasikv("kv", "--store", url, "set", "e", "--file", str(exact), cwd=tmp_path).returncode == 0
    with closing(SqliteStore(tmp_path / "s.db")) as store:
        assert store.get("k") == b"w" * limit and store.get("e") == b"e" * limit


def test_up_refuses_env_files_that_are_devices_or_fifos(app: Path, fifo: Path) -> None:
    for env_file, kind in (("/dev/zero", "a device"), (str(fifo), "a FIFO")):
        refused(
            wasikv("up", "--env-file", env_file, cwd=app),
            f"{env_file}: is {kind}, not a regular file; the dotenv file must be a regular file",
        )


def test_up_refuses_oversized_or_special_manifests_and_runtime_configs(app: Path, fifo: Path) -> None:
    refused(wasikv("up", "--runtime-config-file", str(fifo), cwd=app), f"{fifo}: is a FIFO", "runtime config")
    refused(wasikv("up", "-f", "/dev/zero", cwd=app), "/dev/zero: is a device", "the manifest must be")
    padded = app / "big.toml"
    padded.write_text(MANIFEST + "#" * MAX_CONFIG_FILE_BYTES + "\n")
    refused(
        wasikv("up", "-f", str(padded), cwd=app),
        f"{padded}: the manifest is 4",
        "more than the limit of 4194304",
    )
    # A .env beside the manifest that is not a regular file is not read (nor waited on):
    # `up` goes on to load the component (here not one).
    os.mkfifo(app / ".env")
    refused(wasikv("up", cwd=app), "web.wasm")
    (app / "wasikv.toml").write_text(MANIFEST.replace('source = "web.wasm"', f'source = "{fifo}"'))
    refused(wasikv("up", cwd=app), f"component 'web': source {fifo} is a FIFO, not a .wasm file")


def test_run_and_inspect_refuse_fifos_devices_and_huge_components(tmp_path: Path, fifo: Path) -> None:
    huge = sparse(tmp_path / "huge.wasm", MAX_COMPONENT_BYTES + 1)
    refused(wasikv("run", str(fifo), cwd=tmp_path), f"{fifo}: is a FIFO, not a regular file; the component")
    refused(wasikv("inspect", str(fifo), cwd=tmp_path), f"{fifo}: is a FIFO")
    refused(wasikv("run", "/dev/zero", cwd=tmp_path), "/dev/zero: is a device")
    refused(
        wasikv("run", str(huge), cwd=tmp_path),
        f"{huge}: the component is 536870913 bytes (512.0 MiB), more than the limit of 536870912 bytes",
    )


# -- secrets in store URLs ------------------------------------------------------------

SECRET = "Zq9-s3cr3t-xK"

BAD_URLS = [
    f"postgres://app@127.0.0.1/test?password={SECRET}",
    f"postgres://app:{SECRET}@127.0.0.1/test?bad=1",
    f"postgresql://127.0.0.1/test?schema=s&sslpassword={SECRET}",
    f"redis://127.0.0.1/0?password={SECRET}",
    f"redis://:{SECRET}@127.0.0.1/0?bad=1",
    f"redis://:{SECRET}@127.0.0.1:nope/0",
    f"redis://:{SECRET}@127.0.0.1/0?socket_timeout=-1",
    f"rediss://u:{SECRET}@127.0.0.1/x",
    f"sqlite:store.db?password={SECRET}",
    f"sqlite:///?auth_token={SECRET}",
    f"postgress://u:{SECRET}@h/db?token={SECRET}",
]


@pytest.mark.parametrize("url", BAD_URLS)
def test_open_store_errors_never_show_a_password(url: str, tmp_path: Path) -> None:
    with pytest.raises((WasikvError, KeyValueError)) as caught:
        open_store(url)
    assert SECRET not in str(caught.value) and SECRET not in repr(caught.value)
    assert "***" in str(caught.value)


def test_kv_errors_never_show_a_password(tmp_path: Path) -> None:
    for url in BAD_URLS:
        done = wasikv("kv", "--store", url, "set", "k", "v", cwd=tmp_path)
        assert done.returncode == 1, (url, done.stderr)
        assert SECRET not in done.stdout + done.stderr, done.stderr


@pytest.mark.parametrize(
    "kind, url, problem",
    [
        ("postgres", f"postgres://app@127.0.0.1/test?password={SECRET}", "unknown parameter 'password'"),
        ("redis", f"redis://127.0.0.1/0?password={SECRET}", "unknown parameter 'password'"),
        ("redis", f"redis://:{SECRET}@127.0.0.1/0?bad=1", "unknown parameter 'bad'"),
        ("redis", f"redis://:{SECRET}@127.0.0.1:1/0", "cannot connect to Redis"),
    ],
)
def test_up_errors_never_show_a_password(
    hostile_wasm: Path, app: Path, kind: str, url: str, problem: str
) -> None:
    shutil.copy(hostile_wasm, app / "web.wasm")
    (app / "runtime-config.toml").write_text(f'[key_value_store.default]\ntype = "{kind}"\nurl = "{url}"\n')
    done = wasikv("up", "--listen", f"127.0.0.1:{free_port()}", cwd=app)
    line = refused(done, problem)
    assert SECRET not in done.stdout + done.stderr, line


# -- keys that would repaint the terminal ---------------------------------------------

NASTY_KEYS = {
    "plain/key": "plain/key",
    "clear\x1b[2J\x1b[Hscreen": "clear\\x1b[2J\\x1b[Hscreen",
    "forged\nError: fake line": "forged\\nError: fake line",
    "over\rwrite": "over\\rwrite",
    "back\\slash\\n": "back\\\\slash\\\\n",
    "bidi\u202eevil": "bidi\\u202eevil",
    "nel\x85 and ls\u2028": "nel\\x85 and ls\\u2028",
    "bell\x07 del\x7f": "bell\\x07 del\\x7f",
    "emoji 👩\u200d💻 ключ": "emoji 👩\u200d💻 ключ",
}


@pytest.fixture
def nasty_store(tmp_path: Path) -> Iterator[str]:
    path = tmp_path / "keys.db"
    with closing(SqliteStore(path)) as store:
        for key in NASTY_KEYS:
            store.set(key, b"v")
    yield url_for_path(path)


def test_kv_list_escapes_control_characters_one_key_per_line(tmp_path: Path, nasty_store: str) -> None:
    done = wasikv("kv", "--store", nasty_store, "list", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for raw in ("\x1b", "\r", "\x07", "\x7f", "\x85", "\u2028", "\u202e"):
        assert raw not in done.stdout
    assert done.stdout.split("\n") == [*sorted(NASTY_KEYS.values(), key=_original_order), ""]


def _original_order(escaped: str) -> str:
    return next(key for key, shown in NASTY_KEYS.items() if shown == escaped)


def test_kv_list_null_writes_the_exact_keys(tmp_path: Path, nasty_store: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "wasikv", "kv", "--store", nasty_store, "list", "-0"],
        cwd=tmp_path,
        capture_output=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split(b"\0") == [*(key.encode() for key in sorted(NASTY_KEYS)), b""]
    with closing(sqlite3.connect(tmp_path / "keys.db")) as db:
        assert db.execute("SELECT count(*) FROM kv").fetchone() == (len(NASTY_KEYS),)
