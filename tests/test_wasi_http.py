"""Standard wasi:http components served by wasikv: the same answers as `wasmtime serve`, real toolchains.

The proxy guest (tests/guests/wasi_http_proxy) runs under `wasikv up` and
under `wasmtime serve`, and every request of the corpus (tests/http_corpus.py)
must get the same answer from both, but for the differences listed in
`KNOWN_DIFFERENCES`, each with its reason. Unmodified Spin apps (spin-sdk
3.4.1, Spin's JS SDK) and a componentize-js handler are served too.
"""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from wasikv import Host, InstanceSpec
from wasikv.cli.describe import inspect_component
from wasikv.triggers.http_app import http_component
from wasikv.triggers.http_component import HttpRequest
from wasikv.triggers.wasi_http_component import WasiHttpComponent

from .http_corpus import CORPUS, Case, compare, send
from .support import COMPILE_CACHE
from .test_up import Server, start
from .wasi_http_support import componentize_js_app, proxy_guest, spin_js_app, spin_python_app, wasmtime_serve

pytestmark = pytest.mark.component

#: Where wasikv's answer differs from `wasmtime serve`'s, and why (checked to be exactly these).
KNOWN_DIFFERENCES = {
    # uvicorn (wasikv up's HTTP/1.1 server) neither reads request trailers
    # nor sends response trailers: the guest sees none, and sends none.
    "request-trailers": "body differs",
    "response-trailers": "trailer",
    "response-trailers-unasked": "header trailer",
    # wasmtime ends a body cut short by a trap as if it were complete;
    # wasikv closes the connection, so the client knows it is truncated.
    "guest-raises-after-headers": "complete False != True",
    # wasmtime 50's C API traps a call to a host function taking two borrowed
    # handles (`output-stream.splice`: the stream and its source) before
    # wasikv's function runs; wasmtime-py 51 fixes it.
    "echo-splice": "complete False != True",
}

MANIFEST = """\
spin_manifest_version = 2

[application]
name = "proxy"

[[trigger.http]]
route = "/..."
component = "proxy"

[component.proxy]
source = "proxy.wasm"
key_value_stores = ["default"]
"""


def _app(tmp_path_factory: pytest.TempPathFactory, manifest: str = MANIFEST) -> Path:
    app = tmp_path_factory.mktemp("proxy")
    shutil.copy(proxy_guest(), app / "proxy.wasm")
    (app / "wasikv.toml").write_text(manifest)
    return app


def _serve(
    tmp_path_factory: pytest.TempPathFactory, timeout: str, *more: str, manifest: str = MANIFEST
) -> Iterator[Server]:
    server = start(_app(tmp_path_factory, manifest), "--request-timeout", timeout, *more)
    yield server
    server.proc.kill()
    server.proc.communicate()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # One worker: every request's memory comes from one thread's allocator arena.
    yield from _serve(tmp_path_factory, "60", "--workers", "1")


@pytest.fixture(scope="module")
def impatient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose requests time out after 2 s."""
    yield from _serve(tmp_path_factory, "2")


def test_the_corpus_gets_the_answers_wasmtime_serve_gives(served: Server) -> None:
    found: dict[str, list[str]] = {}
    with wasmtime_serve(proxy_guest()) as reference:
        for case in CORPUS:
            ours, theirs = send(served.base, case, timeout=60), send(reference, case, timeout=60)
            differences = compare(ours, theirs, server_made=case.server_made)
            if differences:
                found[case.name] = differences
    assert set(found) == set(KNOWN_DIFFERENCES), found
    for name, why in KNOWN_DIFFERENCES.items():
        assert any(why in difference for difference in found[name]), (name, found[name])


def test_the_corpus_gets_the_same_answers_from_reused_instances(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """With `instance_reuse`, every case (guest errors and traps among them) is answered as before.

    The cases run twice, so most run on an instance that served others first.
    """
    reused = _serve(tmp_path_factory, "60", manifest=MANIFEST + "instance_reuse = true\n")
    server = next(reused)
    found: dict[str, list[str]] = {}
    try:
        with wasmtime_serve(proxy_guest()) as reference:
            for case in [*CORPUS, *CORPUS]:
                ours, theirs = send(server.base, case, timeout=60), send(reference, case, timeout=60)
                differences = compare(ours, theirs, server_made=case.server_made)
                if differences:
                    found[case.name] = differences
    finally:
        reused.close()
    assert set(found) == set(KNOWN_DIFFERENCES), found
    for name, why in KNOWN_DIFFERENCES.items():
        assert any(why in difference for difference in found[name]), (name, found[name])


def _case(name: str) -> Case:
    return next(case for case in CORPUS if case.name == name)


def test_a_100_mib_body_streams_both_ways_in_bounded_memory(served: Server) -> None:
    """An echo of 100 MiB grows the server's own memory by far less than the body.

    The guest reads and writes 64 KiB at a time (blocking calls). The
    server's resident memory is sampled while the body streams, split into
    the guests' linear memories and the rest (the host's). Only the host's
    share is bounded here: a componentize-py guest that reads a body grows
    its own linear memory by about the bytes read (the lists it is handed
    are freed when its export returns), which `--memory-limit` caps, as it
    would under `wasmtime serve`.
    """
    port = int(served.base.rsplit(":", 1)[1])
    # Warm first: the worker thread's allocator arena, the instance's memory.
    _echo(port, 64 << 20)
    host_before, _ = _resident(served.proc.pid)
    peak = host_before
    finished = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not finished.wait(0.02):
            peak = max(peak, _resident(served.proc.pid)[0])

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        size = 100 << 20
        assert _echo(port, size) >= size
    finally:
        finished.set()
        sampler.join()
    growth = peak - host_before
    # Buffering the body would take 100 MiB at least, twice over for an echo.
    assert growth < 24 << 20, f"the host's resident memory grew by {growth >> 20} MiB while 100 MiB streamed"


def test_a_request_whose_framing_has_no_body_reads_as_empty(served: Server) -> None:
    """No `content-length` (or 0) and no `transfer-encoding`: the guest reads an empty, finished body."""
    port = int(served.base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        for head in (
            b"POST /echo/body-blocking HTTP/1.1\r\nhost: t\r\n\r\n",
            b"POST /echo/body-blocking HTTP/1.1\r\nhost: t\r\ncontent-length: 0\r\n\r\n",
            b"POST /echo/body-blocking HTTP/1.1\r\nhost: t\r\ncontent-length: 3\r\n\r\nabc",
        ):
            sock.sendall(head)
            answer = b""
            while not answer.endswith(b"0\r\n\r\n"):
                data = sock.recv(4096)
                assert data, answer
                answer += data
            assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
            body = answer.split(b"\r\n\r\n", 1)[1]
            assert body == (b"3\r\nabc\r\n0\r\n\r\n" if head.endswith(b"abc") else b"0\r\n\r\n"), body


def test_a_response_streams_while_the_guest_is_still_computing(served: Server) -> None:
    """A guest that sets its head and first chunk, then computes 1.5 s: the client has both first.

    The server holds a head the guest set for a few milliseconds in case
    the guest returns at once (one thread hand-off per quick request); a
    guest that goes on computing, with no host call to wait in, must not
    keep it back until it returns.
    """
    arrivals: list[tuple[float, bytes]] = []
    with httpx.stream("GET", served.base + "/stream?chunks=2&size=5&pause_ms=1500", timeout=30) as response:
        head_at = time.monotonic()
        assert response.status_code == 200
        arrivals += [(time.monotonic(), chunk) for chunk in response.iter_raw()]
    ended = time.monotonic()
    assert b"".join(chunk for _, chunk in arrivals) == b"AAAAABBBBB"
    assert arrivals[0][1].startswith(b"AAAAA") and not arrivals[0][1].endswith(b"B")
    # The pause lies between the first chunk and the end, not before the head.
    assert ended - head_at > 1.0 and ended - arrivals[0][0] > 1.0


def _echo(port: int, size: int) -> int:
    """Send `size` bytes to the blocking echo while reading its answer; how many body bytes came back."""
    chunk = bytes(range(256)) * 256  # 64 KiB
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(
            f"POST /echo/body-blocking HTTP/1.1\r\nhost: t\r\ncontent-length: {size}\r\n\r\n".encode()
        )
        sock.setblocking(False)
        sent = received = 0
        head = b""
        deadline = time.monotonic() + 120
        while received < size and time.monotonic() < deadline:
            if sent < size:
                try:
                    sent += sock.send(chunk[: min(len(chunk), size - sent)])
                except BlockingIOError:
                    pass
            try:
                data = sock.recv(1 << 20)
            except BlockingIOError:
                time.sleep(0.0005)
                continue
            if not data:
                break
            if b"\r\n\r\n" not in head:
                head += data
                if b"\r\n\r\n" in head:
                    status, _, rest = head.partition(b"\r\n\r\n")
                    assert status.startswith(b"HTTP/1.1 200"), status
                    received += len(rest)
                continue
            received += len(data)
    assert sent == size
    # Chunked framing adds a few bytes per 64 KiB: at least the body came back.
    return received


_MAPPING = re.compile(r"([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)")
_RESERVATION = 1 << 30


def _resident(pid: int) -> tuple[int, int]:
    """(the host's, the guests' linear memories') resident bytes of process `pid`, from its smaps.

    wasmtime maps a linear memory as its initial image (a
    `memfd:wasm-memory-image` mapping) followed by anonymous mappings up to
    the end of its reservation (gigabytes, inaccessible past the memory's
    size): grown pages, and pages of a shrunk memory still resident. Every
    mapping from an image to the end of the next reservation is the guest's.
    (Ranges, not neighbours: smaps is read in pieces while the guest grows
    its memory, so two neighbouring lines need not be one snapshot.)
    """
    mappings: list[list[Any]] = []
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        found = _MAPPING.match(line)
        if found is not None:
            mappings.append([int(found[1], 16), int(found[2], 16), found[3], found[4].strip(), 0])
        elif line.startswith("Rss:") and mappings:
            mappings[-1][4] = int(line.split()[1]) << 10
    guest_ranges = []
    for index, (low, _, _, name, _) in enumerate(mappings):
        if "wasm-memory-image" in name:
            ends = (m[1] for m in mappings[index:] if m[2] == "---p" and m[1] - m[0] >= _RESERVATION)
            guest_ranges.append((low, next(ends, low)))
    guest = sum(
        rss
        for first, last, _, _, rss in mappings
        if any(low <= first and last <= high for low, high in guest_ranges)
    )
    return sum(m[4] for m in mappings) - guest, guest


def test_a_body_cut_short_by_a_trap_is_logged_with_the_trap(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The log line of a truncated response names why: the guest's trap, after its traceback."""
    server = start(_app(tmp_path_factory))
    try:
        with httpx.stream("GET", server.base + "/error/after-headers", timeout=30) as response:
            assert response.status_code == 200
            with pytest.raises(httpx.RemoteProtocolError):
                response.read()
    finally:
        server.proc.terminate()
        _, log = server.proc.communicate(timeout=60)
    assert "RuntimeError: the guest failed after sending the headers" in log
    (line,) = [line for line in log.splitlines() if "ended unfinished" in line]
    assert "GET /error/after-headers" in line and "component trapped" in line, line


def test_a_guest_waiting_on_a_slow_client_is_stopped_by_the_request_timeout(impatient: Server) -> None:
    """The body never comes: the guest's blocking read is stopped at its deadline; serving goes on."""
    served = impatient
    port = int(served.base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"POST /echo/body-blocking HTTP/1.1\r\nhost: t\r\ncontent-length: 1000\r\n\r\nonly this")
        answer = b""
        while data := sock.recv(4096):  # until the server closes: a socket timeout fails the test
            answer += data
    # The guest sends its head before it reads; stopped at its deadline, the
    # body it was echoing is cut off: the connection closes without the last chunk.
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert b"only this" in answer and not answer.endswith(b"0\r\n\r\n")
    assert httpx.get(served.base + "/empty", timeout=30).status_code == 200


def test_a_client_that_never_reads_does_not_pin_the_server(impatient: Server) -> None:
    """250 MiB streamed to a client that reads nothing: the guest blocks, is stopped; others are served."""
    served = impatient
    port = int(served.base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"GET /stream?chunks=4000&size=65536 HTTP/1.1\r\nhost: t\r\n\r\n")
        time.sleep(1)
        assert httpx.get(served.base + "/empty", timeout=30).status_code == 200
    assert httpx.get(served.base + "/empty", timeout=30).status_code == 200


def test_the_host_api_serves_a_standard_component() -> None:
    with Host({"default": "memory:"}, cache_dir=COMPILE_CACHE) as host:
        component = http_component(host, host.load(proxy_guest()), name="proxy")
        assert isinstance(component, WasiHttpComponent)
        response = component.handle(HttpRequest("POST", "/echo/body", [("host", "h")], b"ping"))
        assert (response.status, response.body) == (200, b"ping")
        info = component.handle(HttpRequest("GET", "/echo/info?a=1", [("host", "h"), ("x-a", "1")]))
        assert b'"path_with_query": "/echo/info?a=1"' in info.body and b'"x-a": ["1"]' in info.body


def test_inspect_names_the_python_wasi_layer_and_the_standard_world() -> None:
    with Host({"default": "memory:"}, cache_dir=COMPILE_CACHE) as host:
        report = inspect_component(host, proxy_guest())
    assert report.runnable
    providers = {item.name.split("@")[0]: item.provider for item in report.imports}
    assert providers["wasi:http/types"] is not None and "Python" in providers["wasi:http/types"]
    assert providers["wasi:random/random"] == "wasmtime WASI 0.2"
    assert next(w for w in report.worlds if w.world == "wasi:http/proxy").fits


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda: spin_python_app("hello"), b"Hello from a Spin Python app\n"),
        (lambda: spin_js_app("hello"), b"hello from a Spin JS app\n"),
        (componentize_js_app, b"hello from componentize-js\n"),
    ],
    ids=["spin-sdk-3.4.1", "spin-js-sdk", "componentize-js"],
)
def test_unmodified_apps_of_other_toolchains_are_served(build: object, expected: bytes) -> None:
    with Host({"default": "memory:"}, cache_dir=COMPILE_CACHE) as host:
        component = http_component(host, host.load(build()), name="app")  # type: ignore[operator]
        response = component.handle(HttpRequest("GET", "/", [("host", "h")]))
    assert (response.status, response.body) == (200, expected)


def test_an_unmodified_spin_key_value_app_uses_wasikvs_stores_and_grants(tmp_path: Path) -> None:
    stores = {"default": f"sqlite:{tmp_path / 'kv.db'}", "other": "memory:"}
    with Host(stores, cache_dir=COMPILE_CACHE) as host:
        spec = InstanceSpec(grants=frozenset({"default"}))
        app = http_component(host, host.load(spin_python_app("key_value")), name="kv", spec=spec)

        def call(method: str, uri: str, body: bytes = b"") -> tuple[int, bytes]:
            response = app.handle(HttpRequest(method, uri, [("host", "h")], body))
            return response.status, response.body

        assert call("PUT", "/greeting", b"hello")[0] == 204
        assert call("GET", "/greeting") == (200, b"hello")
        assert host.bucket("default").get("greeting") == b"hello"  # the same store wasikv's own API sees
        assert call("GET", "/") == (200, b'["greeting"]')
        assert call("DELETE", "/greeting")[0] == 204
        assert call("GET", "/greeting")[0] == 404
        assert call("GET", "/x?store=other")[0] == 403  # defined, not granted
        assert call("GET", "/x?store=nowhere")[0] == 404


def test_an_unmodified_spin_variables_app_reads_the_components_variables() -> None:
    with Host({"default": "memory:"}, cache_dir=COMPILE_CACHE) as host:
        spec = InstanceSpec(variables={"greeting": "hi there"})
        app = http_component(host, host.load(spin_python_app("variables")), name="vars", spec=spec)
        assert app.handle(HttpRequest("GET", "/greeting", [("host", "h")])).body == b"hi there\n"
        assert app.handle(HttpRequest("GET", "/missing", [("host", "h")])).status == 404
        assert app.handle(HttpRequest("GET", "/Bad-Name", [("host", "h")])).status == 400
