"""The table of trigger kinds drives the manifest parser and the loader: a new kind is one entry.

The runtime side pairs each kind with its runtime in `wasikv.triggers.registry`.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from wasikv.app import ManifestError, load_app, load_manifest
from wasikv.app.triggers import (
    TRIGGER_KINDS,
    ListProblem,
    LoadContext,
    TriggerFields,
    TriggerKind,
)
from wasikv.server.asgi import WasikvApp
from wasikv.triggers.registry import HTTP, KEY_VALUE, TRIGGERS

from ..support import ROOT

APP = '[application]\nname = "app"\n[component.web]\nsource = "web.wasm"\n'


@dataclass(frozen=True)
class CronTrigger:
    schedule: str
    component: str


def parse_cron(fields: TriggerFields, table: Mapping[str, Any], where: str) -> CronTrigger:
    schedule = fields.nonempty(table, "schedule", where, '"@hourly"')
    return CronTrigger(schedule, fields.trigger_component(table, where))


def same_schedule(triggers: Sequence[CronTrigger]) -> ListProblem | None:
    schedules = [trigger.schedule for trigger in triggers]
    twice = next((i for i, s in enumerate(schedules, 1) if s in schedules[: i - 1]), None)
    return None if twice is None else ListProblem(f"#{twice}", "that schedule is taken")


def hourly_only(trigger: CronTrigger, context: LoadContext) -> str | None:
    return None if trigger.schedule == "@hourly" else f"{trigger.schedule!r} is not @hourly"


CRON = TriggerKind(
    name="cron",
    keys=("schedule", "component"),
    example='schedule = "@hourly" and component = "..."',
    parse=parse_cron,
    check_list=same_schedule,
    check_config=hourly_only,
    describe=lambda trigger: f"cron {trigger.schedule}  ->  {trigger.component}",
)


@pytest.fixture
def with_cron(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("wasikv.app.manifest", "wasikv.app.loader"):
        monkeypatch.setattr(f"{module}.TRIGGER_KINDS", (*TRIGGER_KINDS, CRON))


def manifest_error(tmp_path: Path, text: str) -> str:
    (tmp_path / "wasikv.toml").write_text(text)
    with pytest.raises(ManifestError) as caught:
        load_manifest(tmp_path)
    return str(caught.value)


def test_the_unknown_trigger_message_lists_exactly_the_tables_kinds(tmp_path: Path) -> None:
    message = manifest_error(tmp_path, APP + '[[trigger.redis]]\ncomponent = "web"\n')
    sections = [f"[[trigger.{kind.name}]]" for kind in TRIGGER_KINDS]
    assert [kind.name for kind in TRIGGER_KINDS] == ["http", "key-value"]
    assert message.endswith(
        "[[trigger.redis]]: unknown trigger type 'redis' (wasikv has no Redis trigger; use "
        "[[trigger.key-value]] to react to store writes); wasikv supports " + " and ".join(sections)
    )


def test_a_manifest_holds_every_kind_in_table_order(tmp_path: Path) -> None:
    (tmp_path / "wasikv.toml").write_text(APP)
    assert list(load_manifest(tmp_path).triggers) == [kind.name for kind in TRIGGER_KINDS]


def test_a_kind_added_to_the_table_is_parsed_and_checked(tmp_path: Path, with_cron: None) -> None:
    cron = '[[trigger.cron]]\nschedule = "@hourly"\ncomponent = "web"\n'
    (tmp_path / "wasikv.toml").write_text(APP + cron)
    manifest = load_manifest(tmp_path)
    assert manifest.of_kind(CRON) == [CronTrigger("@hourly", "web")]
    assert (manifest.http_triggers, manifest.kv_triggers) == ([], [])

    unknown = manifest_error(tmp_path, APP + "[[trigger.redis]]\n")
    assert unknown.endswith("[[trigger.http]], [[trigger.key-value]] and [[trigger.cron]]")
    not_table = manifest_error(tmp_path, 'trigger = "cron"\n' + APP)
    assert "[[trigger.http]], [[trigger.key-value]] or [[trigger.cron]]" in not_table
    key = manifest_error(tmp_path, APP + '[[trigger.cron]]\nschedul = "x"\ncomponent = "web"\n')
    assert "[[trigger.cron]] #1: unknown key 'schedul' (did you mean 'schedule'?)" in key
    assert key.endswith("allowed keys here: schedule, component")
    twice = manifest_error(tmp_path, APP + cron * 2)
    assert twice.endswith("[[trigger.cron]] #2: that schedule is taken")


def test_the_loader_runs_each_kinds_config_check(tmp_path: Path, with_cron: None) -> None:
    (tmp_path / "wasikv.toml").write_text(APP + '[[trigger.cron]]\nschedule = "@daily"\ncomponent = "web"\n')
    with pytest.raises(ManifestError) as caught:
        load_app(tmp_path, require_sources=False)
    assert str(caught.value).endswith("[[trigger.cron]] #1: '@daily' is not @hourly")


def test_reading_a_manifest_loads_no_trigger_runtime(tmp_path: Path) -> None:
    (tmp_path / "wasikv.toml").write_text(APP + '[[trigger.http]]\nroute = "/"\ncomponent = "web"\n')
    code = (
        "import sys\nfrom wasikv.app import load_app\n"
        f"load_app({str(tmp_path)!r}, require_sources=False)\n"
        "print(sorted(m for m in sys.modules if m.startswith('wasikv.triggers')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_registry_pairs_every_kind_with_a_runtime_in_table_order() -> None:
    assert [entry.kind for entry in TRIGGERS] == list(TRIGGER_KINDS)


def test_every_kinds_runtime_names_a_world_of_the_wit() -> None:
    wits = {
        "wasikv:app": (ROOT / "wit" / "app.wit").read_text(),
        "wasi:http": (ROOT / "wit" / "deps" / "http" / "proxy.wit").read_text(),
    }
    for entry in TRIGGERS:
        exports = entry.runtime.exports
        assert exports
        for export in exports:
            package, _, world = export.world.partition("/")
            assert f"world {world} {{" in wits[package]
            assert export.interfaces and export.functions


def test_the_app_prepares_starts_and_stops_every_kind_in_table_order(tmp_path: Path) -> None:
    (tmp_path / "wasikv.toml").write_text('[application]\nname = "app"\n')
    app = WasikvApp(load_app(tmp_path))
    try:
        assert [entry.kind for entry, _ in app.triggers.items()] == list(TRIGGER_KINDS)
        assert app.triggers[HTTP].components is app.components
        assert app.triggers[KEY_VALUE] is app.watchers
        assert (len(app.components), len(app.watchers)) == (0, 0)
        app.start()
    finally:
        app.close()
