"""Portable wasikv apps: `wasikv_sdk` handlers built as standard `wasi:http/incoming-handler` components.

One app (tests/guests/portable) defines a `wasikv_sdk.http.Handler` and the
class of each HTTP world. Built for `wasikv:app/proxy` it counts in a store
and streams its answers under `wasikv up`; built for `wasikv:app/wasi-proxy`
(no key-value) the same `.wasm` gets the same answers from `wasmtime serve`.
A Spin-style app (tests/guests/spin_app) serves the proxy world unchanged.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from wasikv import Host

from .http_corpus import Case, compare, send
from .support import COMPILE_CACHE, GUESTS, guest_wasm
from .test_up import Server, start
from .wasi_http_support import ToolchainError, wasmtime_serve

pytestmark = pytest.mark.component

PROXY = "wasikv:app/proxy"
WASI_PROXY = "wasikv:app/wasi-proxy"
HTTP_TRIGGER = "wasikv:app/http-trigger"
STANDARD_EXPORT = "wasi:http/incoming-handler@0.2.0"

MANIFEST = """\
spin_manifest_version = 2

[application]
name = "portable"

[[trigger.http]]
route = "/..."
component = "app"

[component.app]
source = "app.wasm"
key_value_stores = ["default"]
"""


def _lines(count: int) -> bytes:
    return "".join(f"line {n} of {count}\n" for n in range(1, count + 1)).encode()


@contextmanager
def serving(wasm: Path, directory: Path) -> Iterator[Server]:
    """`wasikv up` of `wasm` on every path, from `directory` (its store: SQLite in there)."""
    shutil.copy(wasm, directory / "app.wasm")
    (directory / "wasikv.toml").write_text(MANIFEST)
    server = start(directory)
    try:
        yield server
    finally:
        server.proc.kill()
        server.proc.communicate()


@pytest.fixture(scope="module")
def proxy_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(guest_wasm("portable", PROXY), tmp_path_factory.mktemp("proxy")) as server:
        yield server


def test_the_proxy_worlds_export_the_standard_handler_only() -> None:
    with Host({}, cache_dir=COMPILE_CACHE) as host:
        for world in (PROXY, WASI_PROXY):
            exports = host.exports(host.load(guest_wasm("portable", world)))
            interfaces = [name for name in exports if ":" in name]
            assert interfaces == [STANDARD_EXPORT], world


def test_a_proxy_world_handler_counts_in_its_store(proxy_app: Server) -> None:
    with httpx.Client(base_url=proxy_app.base, timeout=60) as client:
        assert client.get("/counter").text == "0\n"
        answers = [client.post("/counter") for _ in range(3)]
        assert [(a.status_code, a.text) for a in answers] == [(200, "1\n"), (200, "2\n"), (200, "3\n")]
        assert answers[0].headers["content-type"] == "text/plain"
        # A `Response` goes out with its length; wasikv:app/http-trigger's hop-by-hop rules hold.
        assert answers[0].headers["content-length"] == "2"
        assert client.get("/counter").text == "3\n"


def test_a_streaming_response_is_sent_chunk_by_chunk(proxy_app: Server) -> None:
    count = 20000  # about 400 KiB: more than the host's 64 KiB buffer
    with (
        httpx.Client(base_url=proxy_app.base, timeout=60) as client,
        client.stream("GET", f"/stream?n={count}") as response,
    ):
        assert response.status_code == 200
        assert response.headers["transfer-encoding"] == "chunked"
        assert "content-length" not in response.headers
        body = b"".join(response.iter_bytes())
    assert body == _lines(count)


def test_the_request_reaches_the_handler_whole(proxy_app: Server) -> None:
    body = bytes(range(256)) * 1024  # 256 KiB, read from the request's stream
    with httpx.Client(base_url=proxy_app.base, timeout=60) as client:
        answer = client.post("/echo?a=1&b=2", content=body, headers={"X-Test": "yes"})
    assert answer.status_code == 200
    assert answer.headers["x-echo"] == "yes"
    assert answer.content == b"POST /echo?a=1&b=2 x-test=yes body=" + body


def test_a_head_http_cannot_carry_is_a_500(proxy_app: Server) -> None:
    with httpx.Client(base_url=proxy_app.base, timeout=60) as client:
        for path in ("/bad-header", "/bad-status"):
            answer = client.get(path)
            assert (answer.status_code, answer.text) == (500, "Internal Server Error\n"), path


def test_a_stream_that_fails_is_cut_short_not_ended(proxy_app: Server) -> None:
    answer = send(proxy_app.base, Case("fail-late", "GET", "/fail-late"), timeout=60)
    assert answer.status == 200
    assert answer.body == b"first chunk\n"
    assert not answer.complete


#: Requests whose answers need no store: the same from both servers.
CASES = (
    Case("no-key-value", "GET", "/counter"),
    Case("stream", "GET", "/stream?n=3000"),
    Case("echo", "POST", "/echo?x=1", (("x-test", "a b"),), b"hello " * 1000),
    Case("chunked-echo", "PUT", "/echo", body=b"z" * 100_000, chunked=True, chunk_size=7000),
    Case("unknown", "GET", "/nothing-here"),
)


def test_the_same_wasm_answers_as_under_wasmtime_serve(tmp_path: Path) -> None:
    wasm = guest_wasm("portable", WASI_PROXY)
    with serving(wasm, tmp_path) as ours, wasmtime_serve(wasm) as reference:
        answers = {case.name: (send(ours.base, case), send(reference, case)) for case in CASES}
    assert answers["no-key-value"][0].status == 501
    assert answers["stream"][0].body.count(b"\n") == 3000
    assert {name: compare(mine, theirs) for name, (mine, theirs) in answers.items()} == {
        case.name: [] for case in CASES
    }


def test_the_same_source_serves_the_record_world(tmp_path: Path) -> None:
    """Built for wasikv:app/http-trigger (its `Http` class), a `StreamingResponse` is joined first."""
    with (
        serving(guest_wasm("portable", HTTP_TRIGGER), tmp_path) as server,
        httpx.Client(base_url=server.base, timeout=60) as client,
    ):
        assert [client.post("/counter").text for _ in range(2)] == ["1\n", "2\n"]
        streamed = client.get("/stream?n=100")
        assert streamed.content == _lines(100)
        assert streamed.headers["content-length"] == str(len(_lines(100)))
        failed = client.get("/fail-late")
        assert (failed.status_code, failed.text) == (500, "Internal Server Error\n")
        # The host refuses these heads in this world (wasikv.triggers.http_component.checked_response).
        assert [client.get(path).status_code for path in ("/bad-header", "/bad-status")] == [500, 500]


def test_the_proxy_world_does_not_link_under_wasmtime_serve() -> None:
    """Why `wasi-proxy` exists: wasmtime serves other drafts of wasi:config and wasi:keyvalue."""
    with (
        pytest.raises(ToolchainError, match=r"imports instance `wasi:(config|keyvalue)/store@0\.2\.0-draft"),
        wasmtime_serve(guest_wasm("portable", PROXY), extra=("-S", "keyvalue", "-S", "config")),
    ):
        pass


@pytest.fixture(scope="module")
def spin_style(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(guest_wasm("spin_app", PROXY), tmp_path_factory.mktemp("spin-style")) as server:
        yield server


def test_a_spin_style_app_serves_the_proxy_world_unchanged(spin_style: Server) -> None:
    # The app of the spin-http tests, as it is: its one class serves either world.
    source = (GUESTS / "spin_app" / "app.py").read_text()
    assert source.count("class IncomingHandler(http.IncomingHandler)") == 1
    with httpx.Client(base_url=spin_style.base, timeout=60) as client:
        assert [client.post("/").text for _ in range(2)] == ["1\n", "2\n"]
        assert client.get("/").text == "2 ['hits']\n"
        missing = client.get("/open/nowhere")
        assert (missing.status_code, missing.text) == (404, "no such store\n")
        assert client.delete("/").text == "reset\n"
