"""Secrets never reach output: store passwords in URLs, secret variables, Authorization headers.

Every path that builds a message from a store URL (open errors, the `url`
attribute, reprs, `Host`, `wasikv kv`, `wasikv up` start-up checks, failing
operations against a closed port) is driven with a URL carrying `SECRET`,
and all captured output (stdout, stderr, log records, exception messages and
reprs) is searched for it. Real servers and processes on loopback only.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from wasikv import Host
from wasikv.errors import ConfigError, StoreError
from wasikv.stores import open_store

from ..support import COMPILE_CACHE
from ..test_up import free_port
from .test_up_hostile import start_up

#: Recognisable in any output; never a substring of anything wasikv prints itself.
SECRET = "S3cr3t-wasikv-7781"


def closed_port() -> int:
    """A loopback port nothing listens on (bound and released)."""
    return free_port()


def _clean(*texts: object) -> None:
    for text in texts:
        assert SECRET not in str(text), f"secret leaked in: {text!s}"


def _failure_texts(exc: BaseException) -> list[str]:
    """An exception's message and repr, and those of its causes."""
    texts: list[str] = []
    seen: BaseException | None = exc
    while seen is not None:
        texts += [str(seen), repr(seen)]
        seen = seen.__cause__ or seen.__context__
    return texts


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every log record, at every level, of every logger."""
    with caplog.at_level(logging.DEBUG):
        yield caplog
    _clean(caplog.text, *(record.getMessage() for record in caplog.records))


def _store_urls() -> list[str]:
    # `{port}` is filled in when the test runs: a port chosen while collecting
    # would differ between pytest-xdist's processes, which then disagree on the tests.
    port = "{port}"
    return [
        f"redis://:{SECRET}@127.0.0.1:{port}/0?socket_timeout=1&connect_timeout=1",
        f"redis://user:{SECRET}@127.0.0.1:{port}/0?connect_timeout=1",
        f"rediss://user:{SECRET}@127.0.0.1:{port}/0?connect_timeout=1",
        f"redis://127.0.0.1:{port}/0?password={SECRET}",
        f"redis://:{SECRET}@127.0.0.1:notaport/0",
        f"postgres://u:{SECRET}@127.0.0.1:{port}/test?connect_timeout=1",
        f"postgresql://u:{SECRET}@127.0.0.1:{port}/test?sslpassword={SECRET}",
        f"postgres://u:{SECRET}@127.0.0.1:notaport/test",
        f"postgres://u:{SECRET}@127.0.0.1:{port}/",
        f"sqlite:x.db?password={SECRET}",
        f"nosuch://u:{SECRET}@127.0.0.1/",
    ]


@pytest.mark.parametrize("url", _store_urls())
def test_opening_and_using_a_store_never_shows_the_password(
    url: str,
    logs: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    url = url.replace("{port}", str(closed_port()))
    texts: list[object] = []
    try:
        store = open_store(url, label="notes")
    except (ConfigError, StoreError) as exc:
        texts += _failure_texts(exc)
    else:
        # Redis opens lazily: the first operations meet the closed port.
        texts += [store.url, repr(store), vars(store).get("address", "")]
        for operation in (lambda: store.get("k"), lambda: store.set("k", b"v"), store.check):
            with pytest.raises(StoreError) as failed:
                operation()
            texts += _failure_texts(failed.value)
        store.close()
    assert texts
    out, err = capsys.readouterr()
    _clean(*texts, out, err)


def test_a_host_with_an_unreachable_store_never_shows_the_password(
    logs: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    port = closed_port()
    texts: list[object] = []
    with pytest.raises((ConfigError, StoreError)) as failed:
        Host({"default": f"postgres://u:{SECRET}@127.0.0.1:{port}/test?connect_timeout=1"})
    texts += _failure_texts(failed.value)
    with pytest.raises(ConfigError) as bad:
        Host({"default": f"redis://:{SECRET}@127.0.0.1:{port}/0?nosuch=1"})
    texts += _failure_texts(bad.value)
    host = Host({"default": "memory:"})
    try:
        store = host.add_store("notes", f"redis://:{SECRET}@127.0.0.1:{port}/0?connect_timeout=1")
        texts += [repr(host), str(host), store.url, repr(store)]
        with pytest.raises(StoreError) as down:
            store.check()
        texts += _failure_texts(down.value)
        with pytest.raises((ConfigError, ValueError)) as twice:
            host.add_store("again", f"redis://:{SECRET}@127.0.0.1:{port}/0?prefix=wasikv:notes:")
        texts += _failure_texts(twice.value)
    finally:
        host.close()
    out, err = capsys.readouterr()
    _clean(*texts, out, err)


def _wasikv(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wasikv", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "WASIKV_CACHE_DIR": str(COMPILE_CACHE)},
    )


@pytest.mark.parametrize(
    "url",
    [
        f"redis://:{SECRET}@127.0.0.1:{{port}}/0?connect_timeout=1",
        f"postgres://u:{SECRET}@127.0.0.1:{{port}}/test?connect_timeout=1",
        f"redis://127.0.0.1:{{port}}/0?password={SECRET}",
        f"redis://:{SECRET}@127.0.0.1:bad/0",
    ],
)
@pytest.mark.parametrize("command", [("get", "k"), ("set", "k", "v"), ("list",), ("migrate-redis",)])
def test_wasikv_kv_never_shows_the_password(url: str, command: tuple[str, ...], tmp_path: Path) -> None:
    done = _wasikv("kv", "--store", url.format(port=closed_port()), *command, cwd=tmp_path)
    assert done.returncode != 0, done
    assert done.stderr.strip()
    _clean(done.stdout, done.stderr)


SECRET_APP = """\
spin_manifest_version = 2
[application]
name = "hostile"

[variables]
api_token = { required = true, secret = true }

[[trigger.http]]
route = "/hostile/..."
component = "hostile"

[component.hostile]
source = "hostile.wasm"
key_value_stores = ["default"]
[component.hostile.variables]
token = "{{ api_token }}"
"""


@pytest.mark.component
@pytest.mark.parametrize(
    "url",
    [
        f"redis://:{SECRET}@127.0.0.1:{{port}}/0?connect_timeout=1",
        f"postgres://u:{SECRET}@127.0.0.1:{{port}}/test?connect_timeout=1",
        f"redis://:{SECRET}@127.0.0.1:{{port}}/0?prefix=a|b",
    ],
)
def test_wasikv_up_with_an_unreachable_store_never_shows_secrets(url: str, app_dir: Path) -> None:
    (app_dir / "wasikv.toml").write_text(SECRET_APP)
    config = app_dir / "runtime-config.toml"
    kind = url.partition(":")[0]
    config.write_text(
        f'[key_value_store.default]\ntype = "{kind}"\nurl = "{url.format(port=closed_port())}"\n'
    )
    done = _wasikv(
        "-v", "up", "--listen", f"127.0.0.1:{free_port()}", "--variable", f"api_token={SECRET}", cwd=app_dir
    )
    assert done.returncode == 1 and "Serving" not in done.stdout, done
    assert done.stderr.startswith("Error: "), done.stderr
    _clean(done.stdout, done.stderr)


@pytest.mark.component
def test_wasikv_up_never_logs_secret_variables_or_authorization(app_dir: Path) -> None:
    (app_dir / "wasikv.toml").write_text(SECRET_APP)
    server = start_up(app_dir, "--variable", f"api_token={SECRET}")
    try:
        with httpx.Client(base_url=server.base, timeout=30) as client:
            for path in ("/hostile/ok", "/hostile/nope", "/none"):
                client.get(path, headers={"Authorization": f"Bearer {SECRET}", "Cookie": f"s={SECRET}"})
    finally:
        _, err = server.stop()
    assert err.strip()  # it logged (requests, the shutdown)
    _clean(err)


def test_a_failing_redis_store_logs_no_password(logs: pytest.LogCaptureFixture) -> None:
    # Operations against a port that closed: each one reconnects and fails.
    store = open_store(f"redis://u:{SECRET}@127.0.0.1:{closed_port()}/0?connect_timeout=1&socket_timeout=1")
    texts: list[object] = []
    try:
        for _ in range(3):
            with pytest.raises(StoreError) as failed:
                store.wait_for_change(0, 0.1)
            texts += _failure_texts(failed.value)
    finally:
        store.close()
    _clean(*texts)
