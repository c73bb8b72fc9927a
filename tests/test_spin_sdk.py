"""`wasikv_sdk.spin`: Spin apps ported by their imports, served by `wasikv up`.

tests/guests/spin_app is a Spin app for spin-sdk 3.x with `spin_sdk`
written `wasikv_sdk.spin`; the Spin original is kept here, and the first
test checks that the import lines are the only difference.
"""

from __future__ import annotations

import dataclasses
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx

from wasikv import Host
from wasikv.cli.describe import inspect_component
from wasikv_sdk.spin import http

from .support import COMPILE_CACHE, GUESTS, guest_wasm
from .test_up import start

SPIN_HTTP = "wasikv:app/spin-http"

#: tests/guests/spin_app/app.py as written for Spin (spin-sdk 3.4).
SPIN_APP = """\
# A Spin HTTP app for spin-sdk 3.x: POST counts with wasi:keyvalue atomics,
# GET reads the count through the key-value Store, DELETE resets it,
# /open/LABEL reports what opening the store LABEL gives, and /relay fetches
# the URL in its `upstream_url` variable and relays what came back, with the
# upstream's headers.
from spin_sdk import http, key_value, variables
from spin_sdk.http import Request, Response, send
from spin_sdk.wit.imports import atomics, wasi_keyvalue_store
from spin_sdk.wit.imports.key_value import Error_AccessDenied, Error_NoSuchStore
from spin_sdk.wit.types import Err


def text(status: int, body: str) -> Response:
    return Response(status, {"content-type": "text/plain"}, bytes(body + "\\n", "utf-8"))


class IncomingHandler(http.IncomingHandler):
    def handle_request(self, request: Request) -> Response:
        if request.uri == "/relay":
            upstream = send(Request("GET", variables.get("upstream_url"), {}, None))
            relayed = {k: v for k, v in upstream.headers.items() if k != "content-length"}
            return Response(
                200,
                {**relayed, "content-type": "text/plain"},
                bytes(f"upstream said {upstream.status}: ", "utf-8") + (upstream.body or b""),
            )
        if request.uri.startswith("/open/"):
            try:
                with key_value.open(request.uri[len("/open/") :]) as store:
                    return text(200, "opened, exists: " + str(store.exists("hits")))
            except Err as e:
                if isinstance(e.value, Error_NoSuchStore):
                    return text(404, "no such store")
                if isinstance(e.value, Error_AccessDenied):
                    return text(403, "access denied")
                raise
        if request.method == "POST":
            with wasi_keyvalue_store.open("default") as bucket:
                count = atomics.increment(bucket, "hits", 1)
            return text(200, str(count))
        with key_value.open_default() as store:
            if request.method == "DELETE":
                store.delete("hits")
                return text(200, "reset")
            count = int(store.get("hits") or b"0")
            return text(200, f"{count} {store.get_keys()}")
"""


def test_the_ported_app_differs_from_spin_only_in_imports() -> None:
    ported = (GUESTS / "spin_app" / "app.py").read_text()
    assert ported == SPIN_APP.replace("spin_sdk", "wasikv_sdk.spin")
    changed = [old for old, new in zip(SPIN_APP.splitlines(), ported.splitlines(), strict=True) if old != new]
    assert changed and all(line.startswith("from spin_sdk") for line in changed)


def test_request_and_response_have_spin_sdks_fields() -> None:
    spin_fields = {
        http.Request: ["method", "uri", "headers", "body"],
        http.Response: ["status", "headers", "body"],
    }
    for cls, names in spin_fields.items():
        fields = dataclasses.fields(cls)
        assert [f.name for f in fields] == names
        assert all(f.default is dataclasses.MISSING for f in fields)  # spin_sdk has no defaults


MANIFEST = """\
spin_manifest_version = 2

[application]
name = "spin-counter"

[[trigger.http]]
route = "/..."
component = "counter"

[component.counter]
source = "app.wasm"
key_value_stores = ["default"]
"""


@contextmanager
def up(app_dir: Path, *options: str) -> Iterator[httpx.Client]:
    """`wasikv up [OPTIONS]` serving `app_dir` (tests/test_up.py's `start`), and a client for it."""
    server = start(app_dir, *options)
    try:
        with httpx.Client(base_url=server.base, timeout=30) as client:
            yield client
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.communicate()


def test_the_spin_app_counts_under_wasikv_up(tmp_path: Path) -> None:
    wasm = guest_wasm("spin_app", SPIN_HTTP)
    with Host({}, cache_dir=COMPILE_CACHE) as host:
        fits = {world.world: world.fits for world in inspect_component(host, wasm).worlds}
    assert fits["wasikv:app/spin-http"] and not fits["wasikv:app/http-trigger"]
    shutil.copy(wasm, tmp_path / "app.wasm")
    (tmp_path / "wasikv.toml").write_text(MANIFEST)
    (tmp_path / "runtime-config.toml").write_text('[key_value_store.other]\ntype = "memory"\n')
    with up(tmp_path) as client:
        assert client.delete("/").text == "reset\n"
        with ThreadPoolExecutor(max_workers=8) as pool:
            counts = sorted(pool.map(lambda _: int(client.post("/").text), range(20)))
        assert counts == list(range(1, 21))
        response = client.get("/")
        assert (response.status_code, response.text) == (200, "20 ['hits']\n")
        assert response.headers["content-type"] == "text/plain"
        # wasi:keyvalue's errors arrive as spin_sdk's error classes.
        assert client.get("/open/default").text == "opened, exists: True\n"
        assert (client.get("/open/other").status_code, client.get("/open/other").text) == (
            403,
            "access denied\n",
        )
        assert (client.get("/open/nope").status_code, client.get("/open/nope").text) == (
            404,
            "no such store\n",
        )


def test_the_spin_app_relays_its_upstream(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        upstream_port = listener.getsockname()[1]
    upstream = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(upstream_port), "--bind", "127.0.0.1"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        (tmp_path / "hello.txt").write_text("hello from upstream\n")
        shutil.copy(guest_wasm("spin_app", SPIN_HTTP), tmp_path / "app.wasm")
        (tmp_path / "wasikv.toml").write_text(
            'spin_manifest_version = 2\n\n[application]\nname = "spin-outbound"\n\n'
            "[variables]\nupstream = { required = true }\n\n"
            '[[trigger.http]]\nroute = "/..."\ncomponent = "outbound"\n\n'
            '[component.outbound]\nsource = "app.wasm"\n'
            'allowed_outbound_hosts = ["*://*:*"]\n\n'
            "[component.outbound.variables]\n"
            'upstream_url = "{{ upstream }}/hello.txt"\n'
        )
        with up(tmp_path, "--variable", f"upstream=http://127.0.0.1:{upstream_port}") as client:
            response = client.get("/relay")
        assert (response.status_code, response.text) == (200, "upstream said 200: hello from upstream\n")
        # The upstream's own date and server headers, relayed, are sent once each: the server adds none.
        assert len(response.headers.get_list("date")) == 1, response.headers
        (server,) = response.headers.get_list("server")
        assert server.startswith("SimpleHTTP/"), server
        assert "last-modified" in response.headers
    finally:
        upstream.kill()
        upstream.wait()
