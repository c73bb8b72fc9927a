"""Opt-in instance reuse: instances really kept, really retired on each bound, never shared.

The guests are real componentize-py builds: the `wasi:http/proxy` guest of
the request corpus (`/instance` says how many requests its instance has
handled and the instance's random id) and the record-world HTTP probe
(`/echo` reports `requests_seen`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from wasikv import ConfigError, GuestTimeout, GuestTrap, Host, InstanceReuse, InstanceSpec, Metrics
from wasikv.app.manifest import ManifestError, load_manifest
from wasikv.triggers.http_app import AnyHttpComponent, http_component
from wasikv.triggers.http_component import HttpRequest, HttpResponse
from wasikv.triggers.wasi_http_component import NoResponse

from .support import COMPILE_CACHE, guest_wasm
from .wasi_http_support import proxy_guest

HTTP_WORLD = "wasikv:app/http-trigger"


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    with Host({"default": "memory:"}, cache_dir=COMPILE_CACHE, metrics=Metrics()) as host:
        yield host


def _proxy(host: Host, reuse: InstanceReuse | None, *, timeout: float | None = None) -> AnyHttpComponent:
    return http_component(
        host, host.load(proxy_guest()), name="proxy", spec=InstanceSpec(timeout=timeout), reuse=reuse
    )


def _get(component: AnyHttpComponent, path: str) -> HttpResponse:
    return component.handle(HttpRequest("GET", path, [("host", "localhost")]))


def _instance(component: AnyHttpComponent) -> tuple[int, str]:
    """(requests this instance has handled, its id), from the guest's `/instance`."""
    seen, ident = _get(component, "/instance").body.decode().split()
    return int(seen), ident


def _retired(host: Host, reason: str, name: str = "proxy") -> float:
    assert host.metrics is not None
    value = host.metrics.registry.get_sample_value(
        "wasikv_instances_retired_total", {"component": name, "reason": reason}
    )
    return value or 0.0


def test_without_reuse_every_request_gets_a_fresh_instance(host: Host) -> None:
    component = _proxy(host, None)
    answers = [_instance(component) for _ in range(3)]
    assert [seen for seen, _ in answers] == [1, 1, 1]
    assert len({ident for _, ident in answers}) == 3


def test_with_reuse_one_instance_serves_request_after_request(host: Host) -> None:
    component = _proxy(host, InstanceReuse())
    answers = [_instance(component) for _ in range(5)]
    assert [seen for seen, _ in answers] == [1, 2, 3, 4, 5]
    assert len({ident for _, ident in answers}) == 1
    assert host.metrics is not None
    assert host.metrics.registry.get_sample_value("wasikv_instance_reuses_total", {"component": "proxy"}) == 4
    component.close()
    assert _retired(host, "closed") == 1


def test_an_instance_is_retired_after_max_requests(host: Host) -> None:
    component = _proxy(host, InstanceReuse(max_requests=3))
    answers = [_instance(component) for _ in range(7)]
    assert [seen for seen, _ in answers] == [1, 2, 3, 1, 2, 3, 1]
    assert len({ident for _, ident in answers}) == 3
    assert _retired(host, "requests") == 2


def test_an_idle_instance_is_retired_without_another_request(host: Host) -> None:
    component = _proxy(host, InstanceReuse(idle_seconds=0.3))
    first = _instance(component)
    sweeper = component._reused._sweeper  # type: ignore[union-attr]
    assert sweeper is not None and sweeper.is_alive()
    deadline = time.monotonic() + 10
    while _retired(host, "idle") < 1:  # the sweeper retires it on its own
        assert time.monotonic() < deadline, "the idle instance was never retired"
        time.sleep(0.05)
    # With nothing left to sweep, the sweeper's thread ends.
    while sweeper.is_alive():
        assert time.monotonic() < deadline, "the sweeper thread outlived the instances it swept"
        time.sleep(0.05)
    seen, ident = _instance(component)
    assert (seen, ident != first[1]) == (1, True)


def test_a_trap_retires_the_instance(host: Host) -> None:
    component = _proxy(host, InstanceReuse())
    _, before = _instance(component)
    with pytest.raises(GuestTrap, match="RuntimeError"):
        _get(component, "/error/raise")
    seen, after = _instance(component)
    assert (seen, after != before) == (1, True)
    assert _retired(host, "trap") == 1


@pytest.mark.parametrize("path", ["/status?code=503", "/error/outparam"])
def test_an_error_response_retires_the_instance(host: Host, path: str) -> None:
    component = _proxy(host, InstanceReuse())
    _, before = _instance(component)
    try:
        assert _get(component, path).status == 503
    except NoResponse:
        assert path == "/error/outparam"  # an error-code: no response at all
    seen, after = _instance(component)
    assert (seen, after != before) == (1, True)
    assert _retired(host, "error-response") == 1


def test_a_client_error_response_keeps_the_instance(host: Host) -> None:
    component = _proxy(host, InstanceReuse())
    _instance(component)
    assert _get(component, "/status?code=404").status == 404
    assert _instance(component)[0] == 3


def test_a_timeout_retires_the_instance_and_the_next_request_runs_on_time(host: Host) -> None:
    component = _proxy(host, InstanceReuse(), timeout=1.0)
    _, before = _instance(component)
    with pytest.raises(GuestTimeout):
        _get(component, "/spin")
    assert _retired(host, "timeout") == 1
    # The next instance gets the whole timeout again: 600 ms of work fit in it.
    for _ in range(2):
        seen, after = _get(component, "/spin?ms=600").body.decode().split()
    assert (int(seen), after != before) == (2, True)


def test_memory_grown_to_the_bound_retires_the_instance(host: Host) -> None:
    component = _proxy(host, InstanceReuse(max_memory_bytes=160 << 20))
    _, before = _instance(component)
    failures = []
    for _ in range(20):
        try:
            _get(component, "/leak?mib=16")
        except GuestTrap as exc:
            failures.append(exc)
            break
    assert failures, "the leaking guest never reached the 160 MiB bound"
    assert "MemoryError" in str(failures[0])
    assert _retired(host, "memory") == 1
    seen, after = _instance(component)
    assert (seen, after != before) == (1, True)
    assert _get(component, "/leak?mib=16").body == b"1 16"  # the leak went with the instance


def test_concurrent_requests_get_different_instances(host: Host) -> None:
    component = _proxy(host, InstanceReuse())
    barrier = threading.Barrier(2)

    def busy() -> str:
        barrier.wait()
        return _get(component, "/spin?ms=500").body.decode().split()[1]

    with ThreadPoolExecutor(2) as pool:
        idents = list(pool.map(lambda _: busy(), range(2)))
    assert len(set(idents)) == 2
    # Both were kept: the next requests run on one of them.
    assert _instance(component)[1] in idents


def test_instances_are_never_shared_between_components(host: Host) -> None:
    one = _proxy(host, InstanceReuse())
    other = http_component(host, one.component, name="other", reuse=InstanceReuse())
    assert [_instance(one)[0] for _ in range(3)] == [1, 2, 3]
    seen, ident = _instance(other)
    assert seen == 1
    assert ident != _instance(one)[1]


@pytest.mark.parametrize("reuse", [None, InstanceReuse(max_requests=50)], ids=["fresh", "reused"])
def test_counts_stay_exact_under_concurrent_load(host: Host, reuse: InstanceReuse | None) -> None:
    component = http_component(
        host, host.load(guest_wasm("suite", HTTP_WORLD, "http_probe")), name="probe", reuse=reuse
    )
    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda _: _get(component, "/count").status, range(200)))
    assert statuses == [200] * 200
    assert host.bucket("default").get("count") == b"200"


def test_the_record_world_reuses_and_retires_too(host: Host) -> None:
    component = http_component(
        host,
        host.load(guest_wasm("suite", HTTP_WORLD, "http_probe")),
        name="probe",
        reuse=InstanceReuse(),
    )
    seen = [json.loads(_get(component, "/echo").body)["requests_seen"] for _ in range(3)]
    assert seen == [1, 2, 3]
    # The SDK answers an exception in `handle` with a 500: an error response.
    assert _get(component, "/raise").status == 500
    assert json.loads(_get(component, "/echo").body)["requests_seen"] == 1
    assert _retired(host, "error-response", "probe") == 1
    with pytest.raises(GuestTrap):
        _get(component, "/trap")  # a stack overflow: a genuine trap
    assert json.loads(_get(component, "/echo").body)["requests_seen"] == 1
    assert _retired(host, "trap", "probe") == 1


# ------------------------------------------------------------------ settings


def _manifest(tmp_path: Path, setting: str) -> Path:
    (tmp_path / "app.wasm").write_bytes(b"")
    path = tmp_path / "wasikv.toml"
    path.write_text(
        '[application]\nname = "a"\n[[trigger.http]]\nroute = "/..."\ncomponent = "web"\n'
        f'[component.web]\nsource = "app.wasm"\n{setting}\n'
    )
    return path


def test_the_manifest_turns_reuse_on_with_defaults_or_settings(tmp_path: Path) -> None:
    assert (
        load_manifest(_manifest(tmp_path, "instance_reuse = true")).components["web"].reuse == InstanceReuse()
    )
    spec = load_manifest(
        _manifest(tmp_path, "instance_reuse = { max_requests = 5, idle_seconds = 2.5, max_memory_mib = 64 }")
    ).components["web"]
    assert spec.reuse == InstanceReuse(max_requests=5, idle_seconds=2.5, max_memory_bytes=64 << 20)
    assert load_manifest(_manifest(tmp_path, "instance_reuse = false")).components["web"].reuse is None
    assert load_manifest(_manifest(tmp_path, "")).components["web"].reuse is None


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("instance_reuse = 3", "'instance_reuse' must be true, false or a table, not"),
        ("instance_reuse = { max_requests = 0 }", "max_requests must be a whole number of at least 1"),
        ("instance_reuse = { idle_seconds = '10s' }", "idle_seconds must be a number of seconds"),
        ("instance_reuse = { max_request = 5 }", "unknown key 'max_request' (did you mean 'max_requests'?)"),
    ],
)
def test_bad_reuse_settings_are_clear_manifest_errors(tmp_path: Path, setting: str, message: str) -> None:
    with pytest.raises(ManifestError) as caught:
        load_manifest(_manifest(tmp_path, setting))
    assert message in str(caught.value)
    assert "[component.web] instance_reuse" in str(caught.value) or "[component.web]" in str(caught.value)


def test_bad_reuse_settings_in_the_api_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="max_idle must be a whole number"):
        InstanceReuse(max_idle=0)
    with pytest.raises(ConfigError, match="max_memory_bytes must be at least 65536"):
        InstanceReuse(max_memory_bytes=1000)
