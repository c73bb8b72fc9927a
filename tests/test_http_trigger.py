"""The HTTP trigger on its own: records in and out, isolation, failures."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from wasikv import ComponentError, GuestTrap, Host, Metrics
from wasikv.capability import InstanceSpec
from wasikv.limits import MAX_RESPONSE_HEADER_BYTES, MAX_RESPONSE_HEADERS
from wasikv.runtime.wit_types import FuncSig
from wasikv.triggers._exports import select_export
from wasikv.triggers.http_component import (
    HANDLE_REQUEST,
    HTTP_EXPORTS,
    HTTP_INTERFACE,
    SPIN_HTTP_INTERFACE,
    BadResponse,
    HttpComponent,
    HttpRequest,
    HttpResponse,
    checked_response,
)

from .support import COMPILE_CACHE, suite_wasm


@pytest.fixture
def probe(make_host: Callable[..., Host]) -> HttpComponent:
    host = make_host({"default": "memory:", "other": "memory:other"})
    return HttpComponent(
        host, host.load(suite_wasm()), name="probe", spec=InstanceSpec(grants=frozenset({"default"}))
    )


def test_request_reaches_the_guest_intact(probe: HttpComponent) -> None:
    body = bytes(range(256)) * 1000
    response = probe.handle(HttpRequest("PUT", "/x/echo?a=1&b=two", [("x-thing", "yes")], body))
    assert response.status == 200
    assert ("content-type", "application/json") in response.headers
    report = json.loads(response.body)
    assert report["method"] == "PUT" and report["uri"] == "/x/echo?a=1&b=two"
    assert report["query"] == {"a": "1", "b": "two"}
    assert report["headers"]["x-thing"] == "yes"
    assert report["body_len"] == len(body)


def test_every_request_gets_a_fresh_instance(probe: HttpComponent) -> None:
    seen = [json.loads(probe.handle(HttpRequest("GET", "/echo")).body)["requests_seen"] for _ in range(3)]
    assert seen == [1, 1, 1]


def test_store_state_persists_across_requests(probe: HttpComponent) -> None:
    counts = [probe.handle(HttpRequest("POST", "/count")).body for _ in range(3)]
    assert counts == [b"1", b"2", b"3"]


def test_grants_apply_to_http_components(probe: HttpComponent) -> None:
    assert probe.handle(HttpRequest("GET", "/open?label=default")).body == b"opened"
    assert probe.handle(HttpRequest("GET", "/open?label=other")).body == b"AccessDenied"
    assert probe.handle(HttpRequest("GET", "/open?label=nope")).body == b"NoSuchStore"


def test_a_trap_raises_and_the_next_request_works(probe: HttpComponent) -> None:
    with pytest.raises(GuestTrap):
        probe.handle(HttpRequest("GET", "/trap"))
    assert probe.handle(HttpRequest("POST", "/count")).status == 200


def test_handler_exception_is_a_500(probe: HttpComponent) -> None:
    response = probe.handle(HttpRequest("GET", "/raise"))
    assert response.status == 500


@pytest.mark.parametrize("path", ["/bad-status", "/bad-header"])
def test_invalid_responses_are_refused(probe: HttpComponent, path: str) -> None:
    with pytest.raises(BadResponse):
        probe.handle(HttpRequest("GET", path))


def test_the_response_is_handed_over_before_the_instance_is_torn_down() -> None:
    # A server sends the response while the worker still tears the instance
    # down; the live-instance gauge shows which side of the teardown we are on.
    metrics = Metrics()
    with Host({"default": "memory:"}, cache_dir=COMPILE_CACHE, metrics=metrics) as host:
        probe = HttpComponent(
            host, host.load(suite_wasm()), name="probe", spec=InstanceSpec(grants=frozenset({"default"}))
        )
        alive_at_response: list[float] = []

        def on_response(response: object) -> None:
            alive_at_response.append(metrics.registry.get_sample_value("wasikv_instances"))

        response = probe.handle(HttpRequest("POST", "/count"), on_response=on_response)
        assert response.body == b"1"
        assert alive_at_response == [1.0]
        assert metrics.registry.get_sample_value("wasikv_instances") == 0.0
        # A failing guest never hands anything over.
        alive_at_response.clear()
        with pytest.raises(GuestTrap):
            probe.handle(HttpRequest("GET", "/trap"), on_response=on_response)
        assert alive_at_response == []


def test_a_str_body_is_utf8_text(probe: HttpComponent) -> None:
    response = probe.handle(HttpRequest("GET", "/text"))
    assert response.status == 200 and response.body == "héllo\n".encode()
    assert ("content-type", "text/plain; charset=utf-8") in response.headers


def test_a_body_of_another_type_is_a_500_naming_it(
    probe: HttpComponent, caplog: pytest.LogCaptureFixture
) -> None:
    response = probe.handle(HttpRequest("GET", "/int-body"))
    assert response.status == 500
    assert "TypeError: Response body must be bytes or str, not int" in caplog.text


def test_a_handler_traceback_is_logged_with_the_apps_own_file_names(
    probe: HttpComponent, caplog: pytest.LogCaptureFixture
) -> None:
    assert probe.handle(HttpRequest("GET", "/raise")).status == 500
    app = Path(__file__).parent / "guests" / "suite" / "http_probe.py"
    assert f'File "{app}"' in caplog.text, caplog.text
    assert '"/1/http_probe.py"' not in caplog.text
    assert "RuntimeError: handler failed on purpose" in caplog.text


def test_the_trigger_takes_either_export_type_checked() -> None:
    http_export, spin_export = HTTP_EXPORTS
    origin = "component 'app' (app.wasm)"
    spin = {SPIN_HTTP_INTERFACE: {"handle": HANDLE_REQUEST}}
    assert select_export(spin, HTTP_EXPORTS, origin) == (spin_export, SPIN_HTTP_INTERFACE)
    both = {**spin, HTTP_INTERFACE: {"handle-request": HANDLE_REQUEST}}
    assert select_export(both, HTTP_EXPORTS, origin) == (http_export, HTTP_INTERFACE)
    renamed = {SPIN_HTTP_INTERFACE: {"handle-request": HANDLE_REQUEST}}
    with pytest.raises(ComponentError, match=r"incoming-handler@0\.1\.0 does not export handle "):
        select_export(renamed, HTTP_EXPORTS, origin)
    mistyped = {SPIN_HTTP_INTERFACE: {"handle": FuncSig(HANDLE_REQUEST.params, None)}}
    with pytest.raises(ComponentError, match=r"incoming-handler@0\.1\.0 handle: "):
        select_export(mistyped, HTTP_EXPORTS, origin)
    with pytest.raises(ComponentError) as refused:
        select_export({}, HTTP_EXPORTS, origin)
    assert str(refused.value) == (
        f"{origin}: the component does not export {HTTP_INTERFACE} (build it for wasikv:app/http-trigger)"
        f" or {SPIN_HTTP_INTERFACE} (build it for wasikv:app/spin-http)"
    )


def test_response_headers_are_bounded_in_number_and_size() -> None:
    assert (MAX_RESPONSE_HEADERS, MAX_RESPONSE_HEADER_BYTES) == (256, 64 * 1024)
    most = [(f"x-{i:03}", "v") for i in range(MAX_RESPONSE_HEADERS)]
    assert len(checked_response(HttpResponse(200, most)).headers) == MAX_RESPONSE_HEADERS
    with pytest.raises(BadResponse, match=r"^257 response headers are more than the 256 allowed$"):
        checked_response(HttpResponse(200, [*most, ("x-one-more", "v")]))
    # Each header counts its name, its value and 4 bytes (": ", CRLF).
    largest = [("x-a", "a" * 32_000), ("x-b", "b" * (MAX_RESPONSE_HEADER_BYTES - 32_000 - 14))]
    assert checked_response(HttpResponse(200, largest)).headers == largest
    largest[1] = ("x-b", largest[1][1] + "b")
    with pytest.raises(
        BadResponse, match=r"^response headers of 65537 bytes are more than the 65536 allowed$"
    ):
        checked_response(HttpResponse(200, largest))
    # Dropped headers count too: they crossed into the host all the same.
    with pytest.raises(BadResponse, match="more than the 65536 allowed"):
        checked_response(HttpResponse(200, [("connection", "x" * MAX_RESPONSE_HEADER_BYTES)]))
