"""One guest error, told the same on every path that runs a guest (real builds, exact text).

tests/guests/raising raises the same ZeroDivisionError from its command, its
record-world HTTP handler, its watcher and (proxy.py) its wasi:http handler;
run by the `Host` API, the triggers, `wasikv run` and `wasikv up`,
each path shows the guest's traceback with the app's file names and source
lines, no Rust panic text, then one line naming the exception, and raises a
`GuestTrap` carrying it.
"""

from __future__ import annotations

import io
import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from wasmtime.component import Func

from wasikv import ConfigError, GuestTrap, Host, InstanceSpec
from wasikv.build.guest_build import sdk_path
from wasikv.stores.base import Change
from wasikv.triggers.http_app import http_component
from wasikv.triggers.http_component import HttpRequest
from wasikv.triggers.watch.delivery import DeliveryFailed, WatcherComponent

from . import background, prebuild
from .sandbox.test_up_hostile import start_up
from .support import COMPILE_CACHE, GUESTS, built_once, guest_wasm, toolchain_digest

pytestmark = pytest.mark.component

APP = GUESTS / "raising"
MESSAGE = "component trapped: the guest raised ZeroDivisionError: division by zero"


def traceback(export: str, line: int, file: str = "app.py", ratio_line: int = 19) -> str:
    """The traceback the guest prints when `export` (at `line` of `file`) calls `ratio(0)`."""
    return (
        "Traceback (most recent call last):\n"
        f'  File "<APP>/{file}", line {line}, in {export}\n'
        "    ratio(0)\n"
        f'  File "<APP>/{file}", line {ratio_line}, in ratio\n'
        "    return 10 // n\n"
        "ZeroDivisionError: division by zero\n"
    )


RUN_TRACEBACK = traceback("run", 27)


def shown(text: str) -> str:
    """`text` with the guest's source directory written `<APP>`."""
    return text.replace(str(APP), "<APP>")


def assert_carries_the_exception(trap: GuestTrap, expected_traceback: str) -> None:
    assert type(trap) is GuestTrap and str(trap) == MESSAGE
    assert (trap.guest_exception_type, trap.guest_message) == ("ZeroDivisionError", "division by zero")
    assert trap.guest_traceback is not None
    assert shown(trap.guest_traceback) + "\n" == expected_traceback


@pytest.fixture(scope="module")
def wasm() -> Path:
    return guest_wasm("raising", "wasikv:app/sdk")


@pytest.fixture
def host() -> Iterator[Host]:
    with Host({"default": "memory:"}, cache_dir=COMPILE_CACHE) as host:
        yield host


def guest_lines(caplog: pytest.LogCaptureFixture) -> str:
    return "".join(f"{r.getMessage()}\n" for r in caplog.records if r.name == "wasikv.guest")


# ------------------------------------------------------------------ Host API


def test_host_run_tells_the_exception_in_the_stream_and_the_trap(host: Host, wasm: Path) -> None:
    out, err = io.BytesIO(), io.BytesIO()
    with pytest.raises(GuestTrap) as raised:
        host.run(wasm, stdout=out, stderr=err)
    assert out.getvalue() == b"before\n"
    assert shown(err.getvalue().decode()) == RUN_TRACEBACK
    assert_carries_the_exception(raised.value, RUN_TRACEBACK)


def test_host_run_tells_it_on_this_process_stderr_too(
    host: Host, wasm: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(GuestTrap, match=f"^{MESSAGE}$"):
        host.run(wasm, stdout=io.BytesIO())
    assert shown(capsys.readouterr().err) == RUN_TRACEBACK


def test_the_panic_text_shows_with_the_guest_logger_at_debug(
    host: Host, wasm: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="wasikv.guest")
    err = io.BytesIO()
    with pytest.raises(GuestTrap, match=f"^{MESSAGE}$"):
        host.run(wasm, stdout=io.BytesIO(), stderr=err)
    text = shown(err.getvalue().decode())
    assert text.startswith(f"{RUN_TRACEBACK}\nthread '<unnamed>' (1) panicked at runtime/src/lib.rs:")
    assert text.endswith(
        "Python function threw an unexpected exception\n"
        "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n"
    )


def test_a_call_into_an_instance_raises_the_same_trap(host: Host, wasm: Path) -> None:
    err = io.BytesIO()
    with pytest.raises(GuestTrap) as raised:  # the trap is raised as it leaves the block
        with host.instantiate(host.load(wasm), InstanceSpec(stdout=io.BytesIO(), stderr=err)) as (
            store,
            instance,
        ):
            interface = instance.get_export_index(store, "wasi:cli/run@0.2.0")
            run = instance.get_func(store, instance.get_export_index(store, "run", interface))
            assert isinstance(run, Func)
            run(store)
    assert shown(err.getvalue().decode()) == RUN_TRACEBACK
    assert_carries_the_exception(raised.value, RUN_TRACEBACK)


def test_a_run_that_returns_its_error_says_so(host: Host, wasm: Path) -> None:
    err = io.BytesIO()
    status = host.run(wasm, ["err"], stdout=io.BytesIO(), stderr=err)
    assert (status, status.returned_error, err.getvalue()) == (1, True, b"")


# ------------------------------------------------------------------ triggers


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (("wasikv:app/sdk", "app"), traceback("handle_request", 32)),
        (("wasikv:app/wasi-proxy", "proxy"), traceback("handle", 12, "proxy.py", 7)),
    ],
    ids=["record-world", "wasi-http"],
)
def test_the_http_trigger_logs_it_and_raises_it(
    host: Host, build: tuple[str, str], expected: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wasikv.guest")
    handler = http_component(host, host.load(guest_wasm("raising", *build)), name="raising")
    with pytest.raises(GuestTrap) as raised:
        handler.handle(HttpRequest("GET", "/", [], b""))
    assert shown(guest_lines(caplog)) == "".join(f"[raising] {line}\n" for line in expected.splitlines())
    assert_carries_the_exception(raised.value, expected)


def test_a_watcher_logs_it_and_its_delivery_fails_naming_it(
    host: Host, wasm: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wasikv.guest")
    watcher = WatcherComponent(host, host.load(wasm), "default", name="raising")
    with pytest.raises(DeliveryFailed, match=f"^{MESSAGE}$"):
        watcher.deliver([Change(1, "key", b"value")])
    sdk = Path(__file__).parent.parent / "guest" / "wasikv_sdk" / "watch.py"
    expected = traceback("on_set", 38).replace(
        "Traceback (most recent call last):\n",
        f'Traceback (most recent call last):\n  File "{sdk}", line 66, in exported\n'
        "    method(self, wrapped, *args)\n",
    )
    assert shown(guest_lines(caplog)) == "".join(f"[raising] {line}\n" for line in expected.splitlines())


# ------------------------------------------------------------------ wasikv run


def wasikv(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wasikv", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "WASIKV_CACHE_DIR": str(COMPILE_CACHE)},
        check=False,
    )


def test_wasikv_run_tells_it_in_the_same_words(wasm: Path, tmp_path: Path) -> None:
    done = wasikv("run", str(wasm), cwd=tmp_path)
    assert (done.returncode, done.stdout) == (1, "before\n")
    assert shown(done.stderr) == f"{RUN_TRACEBACK}Error: {MESSAGE}\n"


def test_wasikv_run_says_when_run_returned_an_error(wasm: Path, tmp_path: Path) -> None:
    done = wasikv("run", str(wasm), "err", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (1, "before\n")
    assert done.stderr == (
        f"Error: {wasm}: the guest's run returned an error (in Python: an uncaught Err, such as a raw"
        " binding raises; componentize-py prints no traceback for it)\n"
    )


# ------------------------------------------------------------------ wasikv up

UP_MANIFEST = """\
spin_manifest_version = 2
[application]
name = "raising"

[[trigger.http]]
route = "/record"
component = "record"

[[trigger.http]]
route = "/wasi"
component = "wasi"

[component.record]
source = "{record}"

[component.wasi]
source = "{wasi}"
"""


def test_wasikv_up_logs_it_and_answers_500(wasm: Path, tmp_path: Path) -> None:
    proxy = guest_wasm("raising", "wasikv:app/wasi-proxy", "proxy")
    (tmp_path / "wasikv.toml").write_text(UP_MANIFEST.format(record=wasm, wasi=proxy))
    up = start_up(tmp_path)
    try:
        with httpx.Client(base_url=up.base, timeout=30) as client:
            assert client.get("/record").status_code == 500
            assert client.get("/wasi").status_code == 500
    finally:
        _, err = up.stop(signal.SIGINT)
    # Without the time stamps, and in any order against the access lines (not this test's concern).
    told = [re.sub(r"^[\d-]+ [\d:,]+ ", "", line) for line in shown(err).splitlines()]
    for name, expected in (
        ("record", traceback("handle_request", 32)),
        ("wasi", traceback("handle", 12, "proxy.py", 7)),
    ):
        assert [line for line in told if line.startswith(f"[{name}] ")] == [
            f"[{name}] {line}" for line in expected.splitlines()
        ], err
        assert f"wasikv: component {name} failed on GET /{name}: {MESSAGE}" in told, err
    assert "panicked" not in err and "RUST_BACKTRACE" not in err


# ------------------------------------------------------------------ componentize-py's own builds


def _build_plain() -> Path:
    def build(directory: Path) -> None:
        # The app directory second, as `wasikv componentize` orders them: its files are /1/...
        command = [Path(sys.executable).with_name("componentize-py"), "-w", "wasikv:app/sdk", "componentize"]
        command += ["-p", str(sdk_path()), "-p", str(APP), "app", "-o", str(directory / "app.wasm")]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr

    source = (APP / "app.py").read_text()
    return built_once("plain-componentize", toolchain_digest(source), build) / "app.wasm"


PLAIN_KEY = ("plain componentize-py build of tests/guests/raising",)
prebuild.extra(PLAIN_KEY, _build_plain)


def test_a_component_built_by_componentize_py_is_told_with_the_python_path_given(host: Host) -> None:
    plain = background.once(PLAIN_KEY, _build_plain)
    err = io.BytesIO()
    with pytest.raises(GuestTrap) as raised:
        host.run(host.load(plain), stdout=io.BytesIO(), stderr=err)
    # Nothing recorded: componentize-py's own names, without source lines.
    assert err.getvalue().decode() == (
        "Traceback (most recent call last):\n"
        '  File "/1/app.py", line 27, in run\n'
        '  File "/1/app.py", line 19, in ratio\n'
        "ZeroDivisionError: division by zero\n"
    )
    assert str(raised.value) == MESSAGE
    err = io.BytesIO()
    with pytest.raises(GuestTrap) as raised:
        host.run(host.load(plain, python_path=[sdk_path(), APP]), stdout=io.BytesIO(), stderr=err)
    assert shown(err.getvalue().decode()) == RUN_TRACEBACK
    assert_carries_the_exception(raised.value, RUN_TRACEBACK)


def test_a_python_path_of_one_string_is_refused(host: Host) -> None:
    with pytest.raises(ConfigError, match=r"^python_path must be a list of directories, not the single path"):
        host.load(b"", python_path="app")  # type: ignore[arg-type]
