"""The compile cache: authenticated entries, unsafe directories and keys, the size bound, `wasikv cache`.

Real compiled components and real files. The components are tiny (a command
without Python, and code-less components told apart by a custom section), so
each test compiles its own cache in milliseconds: what a compile produces
does not change how the cache keeps, checks and prunes it (the rest of the
suite runs its Python guests from the compile cache). The tests run as
root, so the ownership checks (a directory, key or entry owned by another
user) cannot be exercised: the permission-mode checks stand in for them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from wasmtime import Engine

from wasikv import Host
from wasikv.runtime.compile_cache import (
    MAGIC,
    RECENT_COMPONENTS,
    CompileCache,
    entry_verifies,
    read_key,
)

from .support import tiny_command

EMPTY = b"\0asm\x0d\x00\x01\x00"


def tiny(name: str) -> bytes:
    """A component without code, told apart by a custom section: it compiles in milliseconds."""
    payload = bytes([len(name)]) + name.encode()
    return EMPTY + b"\x00" + bytes([len(payload)]) + payload


@dataclass
class Cache:
    """A compile cache: its directory and its key file."""

    directory: Path
    key_file: Path

    def entry(self, wasm: bytes) -> Path:
        """The entry compiled from `wasm` (found by the component hash in its header)."""
        source = hashlib.sha256(wasm).digest()
        found = []
        for path in self.directory.glob("*.cwasm"):
            with path.open("rb") as file:
                if file.read(72)[40:] == source:
                    found.append(path)
        assert len(found) == 1, found
        return found[0]

    def host(self) -> Host:
        return Host({"default": "memory:"}, cache_dir=self.directory)


#: The command in every test's cache, with tiny components "a" and "b".
PROBE = tiny_command()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cache:
    """A cache directory and key file in the test's home, holding `PROBE`, "a" and "b"."""
    root = tmp_path / "home"
    key_file = root / "config" / "wasikv" / "cache.key"
    monkeypatch.setenv("WASIKV_CACHE_KEY", str(key_file))
    monkeypatch.delenv("WASIKV_CACHE_MAX_BYTES", raising=False)
    made = Cache(root / "cache", key_file)
    with made.host() as host:
        host.load(PROBE)
        host.load(tiny("a"), check=False)
        host.load(tiny("b"), check=False)
    return made


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "wasikv" and r.levelno == logging.WARNING]


@pytest.fixture(autouse=True)
def _capture_warnings(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="wasikv")


def _run_probe(host: Host) -> None:
    assert host.run(PROBE) == 0


# ------------------------------------------------------------ authenticated entries


def test_entries_are_private_signed_and_reused(cache: Cache, caplog: pytest.LogCaptureFixture) -> None:
    key_file = cache.key_file
    assert os.stat(key_file).st_mode & 0o777 == 0o600
    assert os.stat(key_file.parent).st_mode & 0o777 == 0o700
    assert os.stat(cache.directory).st_mode & 0o777 == 0o700
    assert len(key_file.read_bytes()) == 32
    probe = cache.entry(PROBE)
    assert probe.read_bytes()[: len(MAGIC)] == MAGIC
    os.utime(probe, (1_000_000, 1_000_000))
    before = os.stat(probe)
    with cache.host() as host:
        _run_probe(host)
    after = os.stat(probe)
    assert after.st_ino == before.st_ino, "the verified entry was used, not rewritten"
    assert after.st_mtime > time.time() - 60, "loading marks the entry used"
    assert _warnings(caplog) == []


def test_a_tampered_artifact_is_rejected_recompiled_and_still_runs(
    cache: Cache, caplog: pytest.LogCaptureFixture
) -> None:
    probe = cache.entry(PROBE)
    data = bytearray(probe.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    probe.write_bytes(data)
    inode = os.stat(probe).st_ino
    with cache.host() as host:
        _run_probe(host)
    [warning] = _warnings(caplog)
    assert str(probe) in warning and "MAC does not verify" in warning
    assert os.stat(probe).st_ino != inode, "the recompiled component replaced the entry"
    assert entry_verifies(probe, read_key(cache.key_file))


def test_another_components_artifact_is_rejected(cache: Cache, caplog: pytest.LogCaptureFixture) -> None:
    a = cache.entry(tiny("a"))
    shutil.copyfile(cache.entry(PROBE), a)  # genuine, but not a's
    with cache.host() as host:
        host.load(tiny("a"), check=False)
    [warning] = _warnings(caplog)
    assert str(a) in warning and "compiled from another component" in warning
    assert cache.entry(tiny("a")) == a, "a compiled again, into its own entry"


def test_truncated_and_unsigned_entries_are_rejected(cache: Cache, caplog: pytest.LogCaptureFixture) -> None:
    a, b = cache.entry(tiny("a")), cache.entry(tiny("b"))
    a.write_bytes(a.read_bytes()[:-100])
    b.write_bytes(b.read_bytes()[b.read_bytes().index(b"\x7fELF") :])  # the artifact alone, as before
    with cache.host() as host:
        host.load(tiny("a"), check=False)
        host.load(tiny("b"), check=False)
    first, second = _warnings(caplog)
    assert str(a) in first and "MAC does not verify" in first
    assert str(b) in second and "no wasikv header" in second
    key = read_key(cache.key_file)
    assert entry_verifies(a, key) and entry_verifies(b, key)


def test_another_key_rejects_every_entry(cache: Cache, caplog: pytest.LogCaptureFixture) -> None:
    probe = cache.entry(PROBE)
    cache.key_file.write_bytes(os.urandom(32))
    key = read_key(cache.key_file)
    assert not entry_verifies(probe, key)
    with cache.host() as host:
        host.load(tiny("a"), check=False)
        host.load(tiny("b"), check=False)
    rejected = _warnings(caplog)
    assert len(rejected) == 2 and all("MAC does not verify" in message for message in rejected)
    assert entry_verifies(cache.entry(tiny("a")), key) and entry_verifies(cache.entry(tiny("b")), key)


# ------------------------------------------------------------ unsafe directories and keys


def test_an_unsafe_cache_directory_is_not_used(cache: Cache, caplog: pytest.LogCaptureFixture) -> None:
    cache.directory.chmod(0o777)
    before = {path.name: os.stat(path).st_ino for path in cache.directory.iterdir()}
    with cache.host() as host:
        host.load(tiny("a"), check=False)  # in the cache, but not trusted: compiled in memory
        host.load(tiny("c"), check=False)
    [warning] = _warnings(caplog)  # one warning, however many loads
    assert "not used" in warning and "world-writable (mode 0777)" in warning
    assert {path.name: os.stat(path).st_ino for path in cache.directory.iterdir()} == before


def _unsafe_key(tmp_path: Path, kind: str) -> Path:
    key = tmp_path / "config" / "cache.key"
    key.parent.mkdir()
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)
    if kind == "world-readable":
        key.chmod(0o644)
    elif kind == "group-writable":
        key.chmod(0o620)
    elif kind == "symlink":
        target = key.with_name("real.key")
        key.rename(target)
        key.symlink_to(target)
    elif kind == "short":
        key.write_bytes(b"0123456789")
    elif kind == "directory":
        key.unlink()
        key.mkdir()
    elif kind == "inside the cache":
        (tmp_path / "cache").mkdir(mode=0o700)
        key = key.rename(tmp_path / "cache" / "cache.key")
    return key


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("world-readable", "accessible to other users (mode 0644"),
        ("group-writable", "accessible to other users (mode 0620"),
        ("symlink", "symbolic link"),
        ("short", "fewer than 32 bytes"),
        ("directory", "not a regular file"),
        ("inside the cache", "inside the cache directory"),
    ],
)
def test_an_unsafe_key_file_is_refused(
    kind: str, message: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = _unsafe_key(tmp_path, kind)
    compile_cache = CompileCache(Engine(), tmp_path / "cache", "test", key_file=key)
    compile_cache.load(tiny("a"), "a")
    compile_cache.load(tiny("b"), "b")
    [warning] = _warnings(caplog)
    assert "compile cache not used" in warning and message in warning
    assert list((tmp_path / "cache").glob("*.cwasm")) == []


def test_a_missing_key_is_created_once_with_mode_0600(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = tmp_path / "config" / "wasikv" / "cache.key"
    directory = tmp_path / "cache"
    CompileCache(Engine(), directory, "test", key_file=key).load(tiny("a"), "a")
    assert key.stat().st_mode & 0o777 == 0o600 and key.parent.stat().st_mode & 0o777 == 0o700
    assert directory.stat().st_mode & 0o777 == 0o700
    secret = key.read_bytes()
    [entry] = directory.glob("*.cwasm")
    inode = entry.stat().st_ino
    CompileCache(Engine(), directory, "test", key_file=key).load(tiny("a"), "a")
    assert key.read_bytes() == secret and entry.stat().st_ino == inode
    assert _warnings(caplog) == []


# ------------------------------------------------------------ the size bound


def test_storing_prunes_the_least_recently_used_entries(
    cache: Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe, a, b = (
        cache.entry(PROBE),
        cache.entry(tiny("a")),
        cache.entry(tiny("b")),
    )
    now = time.time()
    for age, path in ((300, probe), (200, a), (100, b)):
        os.utime(path, (now - age, now - age))
    size = a.stat().st_size  # every tiny entry with a one-letter name has this size
    monkeypatch.setenv("WASIKV_CACHE_MAX_BYTES", str(probe.stat().st_size + 2 * size + size // 2))
    with cache.host() as host:
        host.load(PROBE)  # the oldest entry, now the most recently used
        host.load(tiny("c"), check=False)  # one entry too many: "a" goes
    assert sorted(cache.directory.glob("*.cwasm")) == sorted([probe, b, cache.entry(tiny("c"))])


def test_max_bytes_bounds_the_cache(tmp_path: Path) -> None:
    key = tmp_path / "cache.key"
    CompileCache(Engine(), tmp_path / "cache", "test", key_file=key, max_bytes=0).load(tiny("a"), "a")
    assert list((tmp_path / "cache").glob("*.cwasm")) == []


# ------------------------------------------------------------ kept in memory


def test_the_last_components_loaded_are_kept_compiled_in_memory(tmp_path: Path) -> None:
    compiled: list[str] = []

    @contextmanager
    def on_compile(origin: str) -> Iterator[None]:
        compiled.append(origin)
        yield

    app = tmp_path / "app.wasm"
    app.write_bytes(tiny("a"))
    with Host({}, compile_cache=False, on_compile=on_compile) as host:
        first = host.load(app, check=False)
        assert host.load(app, check=False) is first
        assert host.load(tiny("a"), check=False) is first, "the same bytes, however they come"
        assert host.origin(first) == str(app), "still named after its file"
        app.write_bytes(tiny("b"))
        assert host.load(app, check=False) is not first
        for n in range(RECENT_COMPONENTS - 2):
            host.load(tiny(f"other {n}"), check=False)
        assert host.load(tiny("a"), check=False) is first, "used again, so kept over b"
        host.load(tiny("one too many"), check=False)
        host.load(tiny("b"), check=False)  # the least recently used: compiled again
        assert host.load(tiny("a"), check=False) is first
    assert compiled == [
        str(app),
        str(app),
        *["component"] * (RECENT_COMPONENTS - 2),
        "component",
        "component",
    ]


# ------------------------------------------------------------ wasikv cache


def wasikv_cache(*args: str, cache: Cache, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WASIKV_")}
    environment |= {"WASIKV_CACHE_DIR": str(cache.directory), "WASIKV_CACHE_KEY": str(cache.key_file), **env}
    return subprocess.run(
        [sys.executable, "-m", "wasikv", "cache", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
    )


def _info(cache: Cache) -> dict[str, str]:
    done = wasikv_cache("info", cache=cache)
    assert done.returncode == 0, done.stderr
    fields = (line.partition(":") for line in done.stdout.splitlines())
    return {name: value.strip() for name, _, value in fields}


def test_cache_info_prune_and_clear(cache: Cache) -> None:
    probe, a, b = (
        cache.entry(PROBE),
        cache.entry(tiny("a")),
        cache.entry(tiny("b")),
    )
    info = _info(cache)
    assert info["directory"] == str(cache.directory)
    assert info["key file"] == str(cache.key_file)
    assert info["entries"] == "3" and info["do not verify"] == "0"
    assert "(4294967296 bytes)" in info["bound"]
    total = probe.stat().st_size + a.stat().st_size + b.stat().st_size
    assert f"({total} bytes)" in info["total size"]

    data = bytearray(a.read_bytes())
    data[-1] ^= 1
    a.write_bytes(data)
    assert _info(cache)["do not verify"] == "1"
    now = time.time()
    os.utime(b, (now - 100, now - 100))
    pruned = wasikv_cache("prune", "--max-bytes", str(probe.stat().st_size), cache=cache)
    assert pruned.returncode == 0, pruned.stderr
    assert f"removed {a} " in pruned.stdout and "does not verify" in pruned.stdout
    assert f"removed {b} " in pruned.stdout and "least recently used" in pruned.stdout
    assert list(cache.directory.glob("*.cwasm")) == [probe]

    cleared = wasikv_cache("clear", cache=cache)
    assert cleared.returncode == 0, cleared.stderr
    assert cleared.stdout.startswith("removed 1 entry")
    assert list(cache.directory.glob("*.cwasm")) == []
    assert cache.key_file.exists()


@pytest.mark.parametrize("command", [[], ["info"], ["prune"], ["clear"]])
def test_cache_commands_have_help(command: list[str], cache: Cache) -> None:
    done = wasikv_cache(*command, "--help", cache=cache)
    assert done.returncode == 0 and "Usage:" in done.stdout, done.stderr


def test_cache_command_errors_are_one_line(cache: Cache) -> None:
    cache.key_file.chmod(0o644)
    refused = wasikv_cache("prune", cache=cache)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines() == [
        f"Error: key file {cache.key_file} is accessible to other users (mode 0644, want 0600)"
    ]
    assert len(list(cache.directory.glob("*.cwasm"))) == 3, "nothing is pruned without a usable key"
    bad = wasikv_cache("info", cache=cache, WASIKV_CACHE_MAX_BYTES="lots")
    assert bad.returncode == 1 and bad.stderr.startswith("Error: WASIKV_CACHE_MAX_BYTES")


def test_cache_prune_and_clear_skip_what_is_not_a_regular_file(cache: Cache) -> None:
    probe, a = cache.entry(PROBE), cache.entry(tiny("a"))
    stray = cache.directory / f"{'0' * 64}.cwasm"
    (stray / "inside").mkdir(parents=True)
    (cache.directory / "not-partial.tmp").mkdir()
    link = cache.directory / f"{'1' * 64}.cwasm"
    link.symlink_to(probe)
    data = bytearray(a.read_bytes())
    data[-1] ^= 1
    a.write_bytes(data)
    assert _info(cache)["entries"] == "3"

    pruned = wasikv_cache("prune", cache=cache)
    assert pruned.returncode == 0, pruned.stderr
    assert f"removed {a} " in pruned.stdout and "does not verify" in pruned.stdout
    assert f"skipped {stray}: a directory, not a cache entry; remove it yourself\n" in pruned.stderr
    assert f"skipped {link}: a symbolic link, not a cache entry; remove it yourself\n" in pruned.stderr
    assert (stray / "inside").is_dir() and link.is_symlink() and probe.exists() and not a.exists()

    cleared = wasikv_cache("clear", cache=cache)
    assert cleared.returncode == 0, cleared.stderr
    assert cleared.stdout.startswith("removed 2 entries")
    assert f"skipped {stray}: a directory" in cleared.stderr
    assert sorted(cache.directory.glob("*.cwasm")) == [stray, link]
    assert (cache.directory / "not-partial.tmp").is_dir()
