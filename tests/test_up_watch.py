"""`wasikv up --watch`: a real server process rebuilding a real app as its files are edited.

Each rebuild is a componentize-py build and a first compile (some 20 s of
CPU), so the end-to-end test walks one app through every step in one
server: an edit served by the next request while a request in flight ends on
the old version, a watcher swapped with it, a failing build that keeps the
old version serving, and the fix picked up after it.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from wasikv import ComponentError, create_app
from wasikv.app.manifest import load_manifest
from wasikv.build.changes import InputWatcher
from wasikv.server.asgi import WasikvApp

from .support import COMPILE_CACHE, guest_wasm, suite_wasm, tiny_command
from .test_up import _environ, free_port

#: The app under watch: an HTTP handler and a watcher that say which VERSION they were built as.
APP = '''\
"""Says which VERSION it was built as; /wait holds a request until /release is asked."""

import time

from wasikv_sdk import http, key_value, watch
from wasikv_sdk.spin import http as spin_http
from wasikv_sdk.wit import exports

VERSION = "{version}"


class Http(http.Handler):
    def handle(self, request: http.Request) -> http.Response:
        key = request.query.get("key", "")
        with key_value.open_default() as bucket:
            if request.path == "/wait":
                bucket.set("waiting", VERSION.encode())
                while bucket.get("released") is None:
                    time.sleep(0.02)
            elif request.path == "/release":
                bucket.set("released", VERSION.encode())
            elif request.path == "/set":
                bucket.set(key, b"x")
            elif request.path == "/get":
                return http.Response(200, {{}}, bucket.get(key) or b"")
        return http.Response(200, {{}}, VERSION.encode())


class Watcher(watch.Watcher):
    def on_set(self, bucket: key_value.Bucket, key: str, value: bytes) -> None:
        bucket.set("seen/" + key, VERSION.encode())

    def on_delete(self, bucket: key_value.Bucket, key: str) -> None:
        pass


class Run(exports.Run):
    def run(self) -> None:
        pass


class IncomingHandler(spin_http.IncomingHandler):
    def handle_request(self, request: spin_http.Request) -> spin_http.Response:
        return spin_http.Response(404, {{}}, b"")
'''

MANIFEST = """\
spin_manifest_version = 2

[application]
name = "watched"

[[trigger.http]]
route = "/..."
component = "app"

[[trigger.key-value]]
store = "default"
prefix = "note/"
component = "app"

[component.app]
source = "app.wasm"
key_value_stores = ["default"]

[component.app.build]
command = "wasikv componentize . -w wasikv:app/sdk -o app.wasm"
"""

#: A long deadline: the request held in flight waits out a whole rebuild.
UP_ARGS = ("--watch", "--request-timeout", "600", "--workers", "4")
#: Seconds to wait for a rebuild (a build and a compile on a busy machine).
REBUILD_WAIT = 300.0


class Watched:
    """A `wasikv up --watch` process, its base URL, and its stderr as read so far."""

    def __init__(self, app_dir: Path, *args: str) -> None:
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wasikv", "up", "--listen", f"127.0.0.1:{port}", *args],
            cwd=app_dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**_environ(), "WASIKV_CACHE_DIR": str(COMPILE_CACHE)},
        )
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._lines.append(line)

    @property
    def log(self) -> str:
        return "".join(self._lines)

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float = REBUILD_WAIT) -> None:
        """Poll `check` until it holds (a deadline only against hanging forever)."""
        deadline = time.monotonic() + timeout
        while not check():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"never saw {what}; the server's log:\n{self.log}")
            time.sleep(0.2)

    def get(self, path: str) -> str:
        return httpx.get(self.base + path, timeout=60).text

    def answers(self, path: str, body: str) -> Callable[[], bool]:
        def check() -> bool:
            try:
                return self.get(path) == body
            except httpx.TransportError:
                return False

        return check

    def logged(self, pattern: str) -> Callable[[], bool]:
        return lambda: re.search(pattern, self.log) is not None

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(10)
        return self.proc.returncode


@pytest.fixture
def watched_app(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(APP.format(version="v1"))
    (tmp_path / "wasikv.toml").write_text(MANIFEST)
    return tmp_path


@pytest.fixture
def server_of() -> Iterator[Callable[..., Watched]]:
    started: list[Watched] = []

    def start(app_dir: Path, *args: str) -> Watched:
        server = Watched(app_dir, *args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.mark.slow
@pytest.mark.component  # builds in the `wasikv up --watch` subprocess
def test_edits_are_rebuilt_and_swapped_in_while_serving(
    watched_app: Path, server_of: Callable[..., Watched]
) -> None:
    server = server_of(watched_app, *UP_ARGS)
    # --watch builds first, as --build does.
    server.wait_for("the first version served", server.answers("/", "v1"))
    server.get("/set?key=note/a")
    server.wait_for("v1's watcher", server.answers("/get?key=seen/note/a", "v1"))

    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(lambda: httpx.get(server.base + "/wait", timeout=REBUILD_WAIT).text)
        server.wait_for("the request in flight", server.answers("/get?key=waiting", "v1"))

        (watched_app / "app.py").write_text(APP.format(version="v2"))
        server.wait_for("the edit served", server.answers("/", "v2"))
        assert re.search(r"rebuilt 'app' in [\d.]+ s \(build [\d.]+ s, compile [\d.]+ s\)", server.log)
        # The watcher was swapped with the HTTP handler.
        server.get("/set?key=note/b")
        server.wait_for("v2's watcher", server.answers("/get?key=seen/note/b", "v2"))
        # Released by v2, the request that began on v1 ends on v1.
        assert server.get("/release") == "v2"
        assert in_flight.result(timeout=60) == "v1"

    (watched_app / "app.py").write_text(APP.format(version="v3") + "\ndef broken(:\n")
    server.wait_for("the failed build", server.logged("still serving the previous version"))
    log = server.log
    assert "component 'app' failed to build" in log and "SyntaxError" in log
    assert "Traceback" not in log
    assert server.get("/") == "v2"

    (watched_app / "app.py").write_text(APP.format(version="v3"))
    server.wait_for("the fix served", server.answers("/", "v3"))
    assert server.stop() == 0


@pytest.mark.slow
def test_a_changed_source_without_a_build_is_reloaded_and_a_bad_one_refused(
    tmp_path: Path, server_of: Callable[..., Watched]
) -> None:
    source = tmp_path / "probe.wasm"
    shutil.copy(suite_wasm(), source)
    (tmp_path / "wasikv.toml").write_text(PREBUILT)
    server = server_of(tmp_path, "--watch")
    server.wait_for("the first version served", lambda: _status(server, "/echo") == 200)

    source.write_bytes(b"\0asm this is no component")
    server.wait_for("the refused source", server.logged("still serving the previous version"))
    assert "component 'probe'" in server.log and "Traceback" not in server.log
    assert httpx.get(server.base + "/echo", timeout=60).json()["path"] == "/echo"

    # Another component entirely (it counts, on any path): swapped in without a build.
    shutil.copy(guest_wasm("examples/http-counter", "wasikv:app/http-trigger"), source)
    server.wait_for("the new source served", server.answers("/echo", "0\n"))
    assert re.search(r"reloaded 'probe' in [\d.]+ s", server.log)


PREBUILT = (
    'spin_manifest_version = 2\n[application]\nname = "prebuilt"\n'
    '[[trigger.http]]\nroute = "/..."\ncomponent = "probe"\n'
    '[component.probe]\nsource = "probe.wasm"\nkey_value_stores = ["default"]\n'
)


def _get(app: WasikvApp, path: str) -> httpx.Response:
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(path)

    return asyncio.run(send())


def test_replace_component_swaps_a_checked_version_in_or_changes_nothing(tmp_path: Path) -> None:
    shutil.copy(suite_wasm(), tmp_path / "probe.wasm")
    (tmp_path / "wasikv.toml").write_text(PREBUILT)
    app = create_app(tmp_path / "wasikv.toml", cache_dir=COMPILE_CACHE)
    try:
        with pytest.raises(ComponentError, match="no component 'nope'"):
            app.replace_component("nope", suite_wasm())
        # A command exports no HTTP handler: refused, naming the component; the old one serves on.
        with pytest.raises(ComponentError, match=r"component 'probe'.*export"):
            app.replace_component("probe", tiny_command())
        assert _get(app, "/echo").json()["path"] == "/echo"

        app.replace_component("probe", guest_wasm("examples/http-counter", "wasikv:app/http-trigger"))
        assert _get(app, "/echo").text == "0\n"
    finally:
        app.close()


def _status(server: Watched, path: str) -> int:
    try:
        return httpx.get(server.base + path, timeout=60).status_code
    except httpx.TransportError:
        return 0


def test_watch_with_several_processes_is_refused(watched_app: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "wasikv", "up", "--watch", "--processes", "2"],
        cwd=watched_app,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "--watch" in done.stderr and "--processes 2" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (watched_app / "app.wasm").exists()  # refused before building


def test_changes_are_found_by_content_and_builds_cannot_set_off_builds(watched_app: Path) -> None:
    (watched_app / "lib").mkdir()
    (watched_app / "lib" / "util.py").write_text("X = 1\n")
    watcher = InputWatcher(load_manifest(watched_app / "wasikv.toml"))
    assert watcher.roots() == [watched_app]
    assert watcher.changed().components == ()

    (watched_app / "lib" / "util.py").write_text("X = 2\n")
    assert watcher.changed().components == ("app",)
    assert watcher.changed().components == ()  # seen now
    (watched_app / "lib" / "util.py").write_text("X = 2\n")  # written again, the same bytes
    assert watcher.changed().components == ()
    (watched_app / "notes.txt").write_text("not an input")
    assert watcher.changed().components == ()

    (watched_app / "wasikv.toml").write_text(MANIFEST.replace('"watched"', '"renamed"'))
    changes = watcher.changed()
    assert changes.manifest and changes.components == ()

    relevant = [
        watched_app / "app.py",
        watched_app / "lib" / "util.py",
        watched_app / "wasikv.toml",
    ]
    ignored = [
        watched_app / "app.wasm",  # what the build writes
        watched_app / "app.wasm.1234.tmp",
        watched_app / ".wasikv" / "build-state.json",
        watched_app / "__pycache__" / "app.cpython-312.pyc",
        watched_app / "lib" / "__pycache__" / "util.cpython-312.pyc",
        watched_app / ".git" / "index",
    ]
    assert [watcher.relevant(None, str(path)) for path in relevant] == [True] * len(relevant)
    assert [watcher.relevant(None, str(path)) for path in ignored] == [False] * len(ignored)
