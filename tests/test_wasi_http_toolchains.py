"""Standard wasi:http components from real toolchains, built and answered by `wasmtime serve`.

The reference side of issue 22's differential test: each component of
tests/wasi_http_support.py is built by its own toolchain, and those that
`wasmtime serve` can run are run there with the request corpus
(tests/http_corpus.py), checking the answers are what the guest means. The
Spin apps import Spin's own interfaces (fermyon:spin/*), which `wasmtime
serve` does not provide: for them this checks what they import and export.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator

import pytest

from wasikv import Host

from . import prebuild
from .http_corpus import BIG, CORPUS, HOST, SMALL, Answer, Case, by_name, compare, send
from .support import COMPILE_CACHE
from .wasi_http_support import (
    componentize_js_app,
    jobs,
    proxy_guest,
    spin_js_app,
    spin_python_app,
    wasmtime_serve,
)

pytestmark = pytest.mark.component

for _key, _make in jobs():
    prebuild.extra(_key, _make)

#: Request headers a server withholds from the guest (hop-by-hop: RFC 9110 7.6.1), as wasmtime does.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authorization", "proxy-connection", "upgrade"})


@pytest.fixture(scope="module")
def proxy_url() -> Iterator[str]:
    """`wasmtime serve` of the componentize-py proxy guest."""
    with wasmtime_serve(proxy_guest()) as url:
        yield url


def _json(answer: Answer) -> dict[str, object]:
    assert answer.status == 200, answer
    found: dict[str, object] = json.loads(answer.body)
    return found


def _echoed_info(case: Case, answer: Answer) -> None:
    if case.method == "HEAD":
        assert (answer.status, answer.body) == (200, b"")
        return
    info = _json(answer)
    assert info["method"] == case.method
    assert info["path_with_query"] == case.target
    assert (info["authority"], info["scheme"]) == (HOST, "http")
    assert info["body_length"] == len(case.body)
    assert info["body_sha256"] == hashlib.sha256(case.body).hexdigest()
    sent: dict[str, list[str]] = {}
    for name, value in case.headers:
        sent.setdefault(name.lower(), []).append(value)
    headers = info["headers"]
    assert isinstance(headers, dict)
    for name, values in sent.items():
        assert headers.get(name) == (None if name in HOP_BY_HOP else values), name


def _echoed_body(case: Case, answer: Answer) -> None:
    assert answer.status == 200 and answer.complete
    assert answer.body == case.body
    assert answer.header("content-type") == ["application/octet-stream"]


def _streamed(chunks: int, size: int) -> Callable[[Case, Answer], None]:
    def check(case: Case, answer: Answer) -> None:
        assert answer.status == 200 and answer.complete
        assert answer.body == b"".join(bytes([65 + i % 26]) * size for i in range(chunks))

    return check


def _status(code: int, body: bytes | None = None) -> Callable[[Case, Answer], None]:
    def check(case: Case, answer: Answer) -> None:
        assert answer.status == code and answer.complete
        if body is not None:
            assert answer.body == body

    return check


def _request_trailers(case: Case, answer: Answer) -> None:
    report = _json(answer)
    assert report["body_length"] == len(case.body)
    trailers = report["trailers"]
    assert isinstance(trailers, dict)
    assert trailers["x-checksum"] == ["abc"]
    assert trailers["x-note"][-1] == "two"  # wasmtime drops "one": see the case's quirk


def _no_request_trailers(answer: Answer) -> None:
    assert _json(answer) == {"body_length": len(SMALL), "trailers": None}


def _response_trailers(case: Case, answer: Answer) -> None:
    assert answer.status == 200 and answer.complete
    assert answer.body == b"a body followed by trailers\n"
    assert ("x-body-sha256", hashlib.sha256(answer.body).hexdigest()) in answer.trailers


def _no_trailers(case: Case, answer: Answer) -> None:
    assert answer.status == 200 and answer.complete
    assert answer.body == b"a body followed by trailers\n"
    assert answer.trailers == []


def _declared_length(case: Case, answer: Answer) -> None:
    assert answer.status == 200 and answer.complete
    assert answer.header("content-length") == ["28"]
    assert answer.body == (b"" if case.method == "HEAD" else b"a body of a declared length\n")


def _cut_off(case: Case, answer: Answer) -> None:
    # 10 bytes written of the 100 declared: the response cannot be complete.
    assert not answer.complete


def _repeated_headers(case: Case, answer: Answer) -> None:
    assert answer.status == 200
    assert answer.header("set-cookie") == ["a=1; Path=/", "b=2; Path=/"]
    assert answer.header("x-multi") == ["first", "second"]
    assert answer.header("x-single") == ["only"]


def _partial(case: Case, answer: Answer) -> None:
    assert answer.status == 200
    assert answer.body == b"partial "


_EARLY = _status(200, b"answered before reading the body\n")

#: What each corpus case must answer (under `wasmtime serve`; quirks noted on the cases).
CHECKS: dict[str, Callable[[Case, Answer], None]] = {
    **{
        case.name: _echoed_info
        for case in CORPUS
        if case.target.startswith("/echo/info?") or case.target == "/echo/info"
    },
    **{case.name: _echoed_body for case in CORPUS if case.target.startswith("/echo/body")},
    "info-encoded-path": _status(404, b"no route for /echo/info/../info\n"),
    "bad-header-name": _status(400),
    "request-trailers": _request_trailers,
    "request-no-trailers": lambda case, answer: _no_request_trailers(answer),
    "stream-many-chunks": _streamed(500, 100),
    "stream-big": _streamed(80, 65536),
    "response-trailers": _response_trailers,
    "response-trailers-undeclared": _no_trailers,
    "response-trailers-unasked": _no_trailers,
    "early-answer-small": _EARLY,
    "early-answer-big": _EARLY,
    "early-answer-chunked": _EARLY,
    "status-418": _status(418, b"status 418\n"),
    "status-201": _status(201, b"status 201\n"),
    "status-500-by-guest": _status(500, b"status 500\n"),
    "status-304": _status(304, b""),
    "status-from-204": _status(204, b""),
    "empty": _status(200, b""),
    "no-content": _status(204, b""),
    "declared-length": _declared_length,
    "declared-length-head": _declared_length,
    "short-body": _cut_off,
    "response-headers": _repeated_headers,
    "not-found": _status(404, b"no route for /nowhere\n"),
    "guest-raises": _status(500),
    "guest-raises-after-headers": _partial,
    "guest-error-code": _status(500),
}


def test_every_corpus_case_has_a_check() -> None:
    assert sorted(CHECKS) == sorted(case.name for case in CORPUS)


@pytest.mark.parametrize("case", CORPUS, ids=lambda case: case.name)
def test_the_proxy_guest_answers_the_corpus_under_wasmtime_serve(proxy_url: str, case: Case) -> None:
    first = send(proxy_url, case)
    CHECKS[case.name](case, first)
    # The comparer sees nothing between two answers of the same server to the same request.
    assert compare(first, send(proxy_url, case), server_made=case.server_made) == []


def test_a_spin_js_app_answers_under_wasmtime_serve() -> None:
    with wasmtime_serve(spin_js_app("hello")) as url:
        hello = send(url, Case("hello", "GET", "/"))
        assert (hello.status, hello.body) == (200, b"hello from a Spin JS app\n")
        info = json.loads(send(url, by_name("info-get")).body)
        assert info["method"] == "GET" and info["path_with_query"] == "/echo/info?x=1&y=two%20words&x=3"
        # The fetch API's Headers join a repeated header's values.
        assert info["headers"]["x-repeat"] == ["one, two, three"]
        echoed = send(url, Case("echo", "POST", "/echo/body", body=BIG, chunked=True))
        assert (echoed.status, echoed.complete, echoed.body == BIG) == (200, True, True)
        streamed = send(url, Case("stream", "GET", "/stream?chunks=300&size=1000"))
        _streamed(300, 1000)(by_name("stream-many-chunks"), streamed)
        assert send(url, Case("teapot", "GET", "/status?code=418")).status == 418
        repeated = send(url, Case("headers", "GET", "/headers"))
        assert repeated.header("set-cookie") == ["a=1; Path=/", "b=2; Path=/"]


def test_a_componentize_js_handler_answers_under_wasmtime_serve() -> None:
    with wasmtime_serve(componentize_js_app()) as url:
        hello = send(url, Case("hello", "GET", "/"))
        assert (hello.status, hello.body) == (200, b"hello from componentize-js\n")
        info = json.loads(send(url, by_name("info-get")).body)
        assert info["headers"]["x-repeat"] == ["one", "two", "three"]
        assert info["authority"] == HOST and info["body_length"] == 0
        posted = json.loads(send(url, by_name("info-post-chunked")).body)
        assert posted["method"] == "POST" and posted["body_length"] == 100_000
        echoed = send(url, Case("echo", "POST", "/echo/body", body=BIG))
        assert (echoed.status, echoed.complete, echoed.body == BIG) == (200, True, True)
        assert send(url, Case("created", "POST", "/status?code=201", body=SMALL)).status == 201
        trailers = send(url, Case("trailers", "GET", "/trailers", headers=(("te", "trailers"),)))
        assert trailers.trailers == [("x-trailer", "sent last")]
        repeated = send(url, Case("headers", "GET", "/headers"))
        assert repeated.header("x-multi") == ["first", "second"]


@pytest.fixture(scope="module")
def inspecting_host() -> Iterator[Host]:
    with Host({"default": "memory:"}, cache_dir=COMPILE_CACHE) as host:
        yield host


#: What each Spin app must import beyond WASI (the interfaces its SDK calls), and export.
SPIN_WORLDS = {
    ("python", "hello"): ({"fermyon:spin/key-value@2.0.0", "fermyon:spin/variables@2.0.0"}, "0.2.0"),
    ("python", "key_value"): ({"fermyon:spin/key-value@2.0.0"}, "0.2.0"),
    ("python", "variables"): ({"fermyon:spin/variables@2.0.0"}, "0.2.0"),
    ("python", "outbound"): ({"wasi:http/outgoing-handler@0.2.0", "fermyon:spin/variables@2.0.0"}, "0.2.0"),
    ("js", "kv"): ({"fermyon:spin/key-value@2.0.0", "fermyon:spin/variables@2.0.0"}, "0.2.3"),
}


@pytest.mark.parametrize(("sdk", "name"), sorted(SPIN_WORLDS), ids=lambda part: str(part))
def test_spin_apps_are_standard_http_handlers_importing_spin(
    inspecting_host: Host, sdk: str, name: str
) -> None:
    """`wasmtime serve` cannot run these (it has no fermyon:spin/*): the lead's wasikv tests do."""
    wasm = spin_python_app(name) if sdk == "python" else spin_js_app(name)
    component = inspecting_host.load(wasm, check=False)
    imports = set(inspecting_host.imports(component))
    expected, http_version = SPIN_WORLDS[(sdk, name)]
    assert expected <= imports, sorted(imports)
    assert f"wasi:http/incoming-handler@{http_version}" in inspecting_host.exports(component)
