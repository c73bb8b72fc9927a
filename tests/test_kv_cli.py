"""`wasikv kv`: an app's stores by label, errors that name the store, exact output."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from wasikv.cli.kv import is_binary, resolve_target, shown_url, terminal_bytes
from wasikv.cli.main import main
from wasikv.stores.registry import BACKENDS

from .redis_support import REDIS_HOST, REDIS_PORT, TEST_DB, delete_prefix, require_redis, unique_prefix

MANIFEST = """\
[application]
name = "shop"

[[trigger.http]]
route = "/..."
component = "web"

[component.web]
source = "web.wasm"
key_value_stores = ["default", "orders"]
"""


def app_dir(
    directory: Path, runtime: str = '[key_value_store.orders]\ntype = "sqlite"\npath = "data/orders.db"\n'
) -> Path:
    """An app in `directory` whose `orders` label is data/orders.db; web.wasm is not built."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "wasikv.toml").write_text(MANIFEST, "utf-8")
    (directory / "runtime-config.toml").write_text(runtime, "utf-8")
    return directory


def kv(*args: str, input: bytes | None = None) -> Result:
    return CliRunner().invoke(main, ["kv", *args], input=input)


def test_label_resolves_like_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = app_dir(tmp_path / "app")
    monkeypatch.chdir(tmp_path)
    assert kv("-f", "app", "--label", "orders", "set", "o1", "pending").exit_code == 0
    assert (app / "data" / "orders.db").is_file()
    assert not (tmp_path / ".wasikv").exists() and not (app / ".wasikv").exists()
    assert kv("-f", "app/wasikv.toml", "--label", "orders", "get", "o1").stdout_bytes == b"pending"
    # --label also works after the subcommand; the group's -f still applies.
    assert kv("-f", "app", "list", "--label", "orders").stdout == "o1\n"
    # The default label is the app's .wasikv/default.db, not the working directory's.
    assert kv("-f", "app", "incr", "hits").stdout == "1\n"
    assert (app / ".wasikv" / "default.db").is_file()
    assert not (tmp_path / ".wasikv").exists()


def test_a_wasikv_toml_in_the_working_directory_is_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = app_dir(tmp_path)
    monkeypatch.chdir(app)
    assert kv("set", "k", "v").exit_code == 0
    assert resolve_target().url == resolve_target(manifest=str(app), label="default").url
    assert kv("--label", "orders", "set", "k", "o").exit_code == 0
    assert kv("get", "k").stdout == "v"
    assert kv("get", "--label", "orders", "k").stdout == "o"


def test_without_an_app_the_default_store_is_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert kv("set", "k", "v").exit_code == 0
    assert (tmp_path / ".wasikv" / "default.db").is_file()
    assert resolve_target().url == "sqlite:.wasikv/default.db"


def test_store_and_app_options_together_are_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    for args in (
        ["--store", "memory:", "--label", "orders", "get", "k"],
        ["-f", ".", "get", "--store", "memory:", "k"],
        ["--store", "memory:", "get", "--label", "orders", "k"],
        ["--runtime-config-file", "runtime-config.toml", "list", "--store", "memory:"],
    ):
        done = kv(*args)
        assert done.exit_code == 2, args
        assert "--store names the store by URL" in done.stderr


def test_an_undefined_label_is_an_error_naming_the_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    done = kv("--label", "nope", "get", "k")
    assert done.exit_code == 1
    assert "wasikv.toml defines no store label 'nope' (defined: default, orders)" in done.stderr
    assert "[key_value_store.nope]" in done.stderr


def test_errors_name_the_store_and_where_it_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = app_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert kv("set", "k", "v").exit_code == 0
    done = kv("get", "missing")
    assert done.exit_code == 1
    assert done.stderr == (
        f"Error: key 'missing' does not exist in sqlite:{app / '.wasikv' / 'default.db'} "
        "(label default of wasikv.toml)\n"
    )
    refused = kv("incr", "k")
    assert refused.exit_code == 1
    assert refused.stderr.startswith(f"Error: sqlite:{app / '.wasikv' / 'default.db'} (label default of ")
    assert "not a decimal integer" in refused.stderr
    # A relative --store URL is shown with its absolute path.
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    bad = kv("get", "--store", "sqlite:bad.db", "k")
    assert bad.stderr == f"Error: no store at sqlite:{tmp_path / 'sub' / 'bad.db'}: the file does not exist\n"


@pytest.mark.parametrize("command", [["get", "k"], ["list"]])
def test_reading_a_missing_sqlite_store_creates_nothing(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    done = kv(*command)
    assert done.exit_code == 1
    assert (
        done.stderr
        == f"Error: no store at sqlite:{tmp_path / '.wasikv' / 'default.db'}: the file does not exist\n"
    )
    app = app_dir(tmp_path / "app")
    by_label = kv("-f", "app", "--label", "orders", *command)
    assert by_label.exit_code == 1
    assert (
        f"no store at sqlite:{app / 'data' / 'orders.db'} (label orders of app/wasikv.toml)"
        in by_label.stderr
    )
    assert list(tmp_path.rglob("*.db")) == [] and not (tmp_path / ".wasikv").exists()
    assert not (app / "data").exists()


def test_get_writes_exact_bytes_to_pipes_files_and_with_raw(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    blob = bytes(range(256)) + b"\xff\xfe no newline"
    assert kv("set", "blob", "--file", "-", input=blob).exit_code == 0
    assert kv("set", "text", "hello").exit_code == 0
    assert kv("get", "blob").stdout_bytes == blob  # CliRunner's stdout is not a terminal
    assert kv("get", "--raw", "blob").stdout_bytes == blob
    assert kv("get", "text").stdout_bytes == b"hello"
    assert kv("get", "-o", "out.bin", "blob").stdout_bytes == b""
    assert (tmp_path / "out.bin").read_bytes() == blob
    assert kv("get", "--output", "empty.bin", "missing").exit_code == 1
    assert not (tmp_path / "empty.bin").exists()
    # Through a real pipe too.
    piped = subprocess.run(
        [sys.executable, "-m", "wasikv", "kv", "get", "blob"], cwd=tmp_path, capture_output=True, timeout=60
    )
    assert piped.returncode == 0 and piped.stdout == blob


def test_what_a_terminal_gets() -> None:
    assert terminal_bytes(b"hello", tty=True, raw=False) == b"hello\n"
    assert terminal_bytes(b"two\nlines\n", tty=True, raw=False) == b"two\nlines\n"
    assert terminal_bytes("tab\tand ünïcode".encode(), tty=True, raw=False) == "tab\tand ünïcode\n".encode()
    for binary in (b"\xff", b"\x00", b"esc\x1b[2J", b"cr\r\n", "c1\u0085".encode(), b"del\x7f"):
        assert is_binary(binary), binary
        assert terminal_bytes(binary, tty=True, raw=False) is None
        assert terminal_bytes(binary, tty=True, raw=True) == binary
        assert terminal_bytes(binary, tty=False, raw=False) == binary
    assert terminal_bytes(b"hello", tty=False, raw=False) == b"hello"
    assert terminal_bytes(b"", tty=True, raw=False) == b"\n"


def _on_a_terminal(args: list[str], cwd: Path) -> tuple[int, bytes, bytes]:
    """Run `wasikv` with its stdout on a pseudo-terminal; exit status, what the terminal got, stderr."""
    leader, follower = pty.openpty()
    try:
        done = subprocess.Popen(
            [sys.executable, "-m", "wasikv", *args], cwd=cwd, stdout=follower, stderr=subprocess.PIPE
        )
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the other side closed
                break
            if not chunk:
                break
            shown += chunk
        _, stderr = done.communicate(timeout=60)
    finally:
        os.close(leader)
    return done.returncode, shown, stderr


def test_a_terminal_gets_text_with_a_newline_and_no_binary(tmp_path: Path) -> None:
    url = f"sqlite:{tmp_path / 'kv.db'}"
    assert CliRunner().invoke(main, ["kv", "set", "--store", url, "text", "hello"]).exit_code == 0
    assert (
        CliRunner()
        .invoke(main, ["kv", "set", "--store", url, "bin", "--file", "-"], input=b"\x1b\x00")
        .exit_code
        == 0
    )
    code, shown, _ = _on_a_terminal(["kv", "get", "--store", url, "text"], tmp_path)
    assert code == 0 and shown == b"hello\r\n"  # the terminal turns \n into \r\n
    code, shown, stderr = _on_a_terminal(["kv", "get", "--store", url, "bin"], tmp_path)
    assert code == 1 and shown == b""
    assert f"the value of 'bin' in sqlite:{tmp_path / 'kv.db'} is binary (2 bytes)".encode() in stderr
    assert b"--raw" in stderr and b"-o FILE" in stderr
    code, shown, _ = _on_a_terminal(["kv", "get", "--store", url, "--raw", "bin"], tmp_path)
    assert code == 0 and shown == b"\x1b\x00"


def test_help_lists_every_url_scheme_of_the_registry() -> None:
    shown = kv("--help").stdout
    for backend in BACKENDS:
        for scheme in backend.schemes:
            assert f"{scheme}:" in shown, scheme
    assert "wasikv.toml" in shown and "sqlite:.wasikv/default.db" in shown
    assert "exact bytes" in kv("get", "--help").stdout


def test_shown_urls_have_no_credentials() -> None:
    assert (
        shown_url("redis://user:s3cret@example.com:6380/2?prefix=p") == "redis://example.com:6380/2?prefix=p"
    )
    assert shown_url("rediss://:s3cret@example.com") == "rediss://example.com"
    assert shown_url("postgres://me:p@ss@db.example/app") == "postgres://db.example/app"
    assert shown_url("sqlite:///a%20b/c.db?busy_timeout=1") == "sqlite:/a b/c.db"
    assert shown_url("memory:") == "memory:"


def test_redis_stores_by_label_and_without_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_redis()
    prefix = unique_prefix()
    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{TEST_DB}?prefix={prefix}"
    app_dir(tmp_path, runtime=f'[key_value_store.orders]\ntype = "redis"\nurl = "{url}"\n')
    monkeypatch.chdir(tmp_path)
    try:
        assert kv("--label", "orders", "set", "o1", "paid").exit_code == 0
        assert kv("get", "--store", url, "o1").stdout == "paid"
        missing = kv("--label", "orders", "get", "o2")
        assert missing.stderr == f"Error: key 'o2' does not exist in {url} (label orders of wasikv.toml)\n"
        migrated = kv("--label", "orders", "migrate-redis")
        assert migrated.exit_code == 0 and "nothing to migrate" in migrated.stdout
        assert kv("migrate-redis").exit_code == 2  # the default label is SQLite
        # Nothing listens on port 1: the error names the store, without the password.
        secret = f"redis://:s3cret-pw@{REDIS_HOST}:1/{TEST_DB}?prefix={prefix}"
        refused = kv("get", "--store", secret, "o1")
        assert refused.exit_code == 1
        assert refused.stderr.startswith(f"Error: redis://{REDIS_HOST}:1/{TEST_DB}?prefix={prefix}: ")
        assert "s3cret-pw" not in refused.stderr
        bad = kv("get", "--store", secret + "&bogus=1", "o1")
        assert bad.exit_code == 1 and "bogus" in bad.stderr and "s3cret-pw" not in bad.stderr
    finally:
        delete_prefix(prefix)
