"""The capability seam: one `InstanceSpec` per instance, each capability's state opened and closed with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from wasmtime import Store

from wasikv import ConfigError, Host, InstanceSpec
from wasikv.capability import Capability
from wasikv.interfaces.keyvalue import KeyValueSession
from wasikv.runtime.linking import LinkPlan

from .support import tiny_command


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host({"default": "memory:", "other": "memory:other"}, cache_dir=tmp_path / "cache")


def _live_states(host: Host) -> dict[str, int]:
    return {capability.name: len(capability.states) for capability in host.capabilities}


def test_a_spec_checks_its_variables_and_normalises_its_fields() -> None:
    spec = InstanceSpec(argv=["app"], grants=["default"], variables={"k": "v"})  # type: ignore[arg-type]
    assert spec.argv == ("app",) and spec.grants == frozenset({"default"})
    # Variables may be secrets: a spec's repr never shows them.
    assert "s3cret" not in repr(InstanceSpec(variables={"token": "s3cret"}))
    with pytest.raises(ConfigError, match="variable 'token' must be a string, not int"):
        InstanceSpec(variables={"token": 7})  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match="variable names must be strings"):
        InstanceSpec(variables={7: "x"})  # type: ignore[dict-item]


def test_each_capability_gives_an_instance_its_state_and_takes_it_back(host: Host) -> None:
    component = host.load(tiny_command())
    spec = InstanceSpec(grants=frozenset({"default"}), variables={"greeting": "hi"})
    with host.instantiate(component, spec) as (store, _instance):
        assert _live_states(host) == {
            "key-value": 1,
            "variables": 1,
            "outbound HTTP": 0,
            "Python WASI": 0,
            "unprovided Spin interfaces": 0,
        }
        session = host.session(store)
        assert isinstance(session, KeyValueSession)
    assert _live_states(host) == {
        "key-value": 0,
        "variables": 0,
        "outbound HTTP": 0,
        "Python WASI": 0,
        "unprovided Spin interfaces": 0,
    }


def test_a_grant_of_an_undefined_label_is_refused_and_leaves_nothing_behind(host: Host) -> None:
    component = host.load(tiny_command())
    with (
        pytest.raises(ConfigError, match=r"granted store label\(s\) 'missing' not defined"),
        host.instantiate(component, InstanceSpec(grants=frozenset({"default", "missing"}))),
    ):
        pass
    assert _live_states(host) == {
        "key-value": 0,
        "variables": 0,
        "outbound HTTP": 0,
        "Python WASI": 0,
        "unprovided Spin interfaces": 0,
    }


class _Recording(Capability):
    """A capability of the test's own: records what it is asked to do."""

    name = "recording"

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.fail = fail
        self.opened: list[InstanceSpec] = []
        self.released: list[Any] = []

    def open(self, store: Store, ctx: int, plan: LinkPlan, spec: InstanceSpec) -> None:
        if self.fail:
            raise ConfigError("recording refuses this instance")
        self.opened.append(spec)
        super().open(store, ctx, plan, spec)

    def make_state(self, spec: InstanceSpec) -> str:
        return f"state of {spec.argv[0]}"

    def release(self, state: Any) -> None:
        self.released.append(state)


def test_a_capability_added_to_a_host_is_opened_and_closed_with_every_instance(host: Host) -> None:
    recording = _Recording()
    host.capabilities = (*host.capabilities, recording)
    component = host.load(tiny_command())
    assert host.run(component, program_name="first") == 0
    assert host.run(component, program_name="second") == 0
    assert [spec.argv[0] for spec in recording.opened] == ["first", "second"]
    assert recording.released == ["state of first", "state of second"]
    assert recording.states == {}


def test_a_capability_that_refuses_an_instance_closes_the_ones_opened_before_it(host: Host) -> None:
    host.capabilities = (*host.capabilities, _Recording(fail=True))
    component = host.load(tiny_command())
    with pytest.raises(ConfigError, match="recording refuses"):
        host.run(component)
    assert all(not capability.states for capability in host.capabilities)
