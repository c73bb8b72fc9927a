"""Spin's own interfaces: key-value and variables served on wasikv's stores, grants and variables.

tests/guests/spin_kv is built with componentize-py against Spin's WIT as
wasikv vendors it (wit/deps/spin), without wasikv_sdk, as a Spin SDK's app
imports it: `fermyon:spin/key-value@2.0.0` and `fermyon:spin/variables@2.0.0`.
It runs through `Host.run` on real SQLite stores. The Spin interfaces wasikv
does not serve (linked as traps, `interfaces/unprovided.py`) are checked by
name, through `wasikv inspect` and by calling one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from wasikv import GuestTrap, Host, Limits
from wasikv.build.guest_build import componentize
from wasikv.cli.describe import inspect_component
from wasikv.errors import LimitExceeded
from wasikv.interfaces.keyvalue import KeyValueSession, NumberedCursors
from wasikv.interfaces.spin import INTERFACES
from wasikv.interfaces.spin.key_value import get_keys
from wasikv.interfaces.spin.variables import InvalidName, get, name_problem
from wasikv.interfaces.unprovided import SPIN_PACKAGES, not_provided
from wasikv.limits import MAX_TRANSFER_BYTES
from wasikv.stores.memory import MemoryStore

from . import background, prebuild
from .support import CACHE, GUESTS, ROOT

GUEST = GUESTS / "spin_kv"
KV = "fermyon:spin/key-value@2.0.0"
VARS = "fermyon:spin/variables@2.0.0"


def _build(world: str) -> Path:
    """tests/guests/spin_kv built for `world` against wasikv's vendored WIT, once per content."""
    digest = hashlib.sha256(world.encode())
    for path in sorted([*GUEST.iterdir(), *(ROOT / "wit" / "deps").rglob("*.wit")]):
        if path.is_file():
            digest.update(str(path.relative_to(ROOT)).encode() + path.read_bytes())
    target = CACHE / "guests" / f"spin_kv-{world}-{digest.hexdigest()[:20]}.wasm"
    if target.exists():
        return target
    with tempfile.TemporaryDirectory() as scratch:
        wit = Path(scratch) / "wit"
        shutil.copytree(ROOT / "wit" / "deps", wit / "deps")
        shutil.copy(GUEST / "world.wit", wit / "world.wit")
        partial_target = target.with_suffix(f".{os.getpid()}.tmp")
        # `wit` keeps wasikv_sdk (and its componentize-py.toml) off the guest's path.
        componentize(GUEST, partial_target, world=world, wit=wit)
        partial_target.replace(target)
    prebuild.compile_into_cache(target)
    return target


for _world in ("spin-kv", "spin-platform"):
    prebuild.extra(("spin_kv", _world), partial(_build, _world))


def spin_guest(world: str = "spin-kv") -> Path:
    return background.once(("spin_kv", world), partial(_build, world))


@pytest.fixture
def host(tmp_path: Path, make_host: Callable[..., Host]) -> Host:
    """Two SQLite stores, `default` and `other`."""
    return make_host({"default": f"sqlite:{tmp_path / 'default.db'}", "other": f"sqlite:{tmp_path / 'o.db'}"})


def steps(
    host: Host,
    *commands: str,
    grants: Iterable[str] | None = None,
    variables: dict[str, str] | None = None,
    world: str = "spin-kv",
) -> list[dict[str, Any]]:
    """Run the guest's steps on one instance; one result each."""
    out, err = io.BytesIO(), io.BytesIO()
    wasm = spin_guest(world)
    code = host.run(wasm, list(commands), grants=grants, variables=variables, stdout=out, stderr=err)
    assert code == 0, err.getvalue().decode()
    results: list[dict[str, Any]] = json.loads(out.getvalue())
    assert len(results) == len(commands)
    return results


def ok(value: Any) -> dict[str, Any]:
    return {"ok": value}


def error(case: str, message: str | None = None) -> dict[str, Any]:
    return {"error": case, "message": message}


# ------------------------------------------------------------------ key-value


def test_store_operations_on_a_sqlite_store(host: Host) -> None:
    results = steps(
        host,
        "open:default",
        "set:b=2",
        "set:a=1",
        "get:a",
        "get:missing",
        "exists:a",
        "exists:missing",
        "keys",
        "set:a=",
        "get:a",
        "exists:a",
        "delete:a",
        "delete:a",
        "exists:a",
        "keys",
    )
    assert results == [
        ok("default"),
        ok(None),
        ok(None),
        ok("1"),
        ok(None),
        ok(True),
        ok(False),
        ok(["a", "b"]),
        ok(None),
        ok(""),  # an empty value exists
        ok(True),
        ok(None),
        ok(None),  # deleting a missing key is no error
        ok(False),
        ok(["b"]),
    ]
    # The same data wasi:keyvalue guests and the host see.
    assert host.bucket("default").get("b") == b"2"
    assert host.bucket("other").get("b") is None


def test_stores_by_label_are_apart_and_persist_across_runs(host: Host) -> None:
    steps(host, "open:default", "set:k=in-default", "open:other", "set:k=in-other")
    results = steps(host, "open:default", "get:k", "keys", "open:other", "get:k")
    assert results == [ok("default"), ok("in-default"), ok(["k"]), ok("other"), ok("in-other")]


def test_grants_and_unknown_labels(host: Host) -> None:
    results = steps(host, "open:default", "open:other", "open:nope", grants=["default"])
    assert results == [ok("default"), error("access-denied"), error("no-such-store")]
    # Without grants (a plain `wasikv run`), every defined label opens.
    assert steps(host, "open:other", "open:nope") == [ok("other"), error("no-such-store")]


def test_a_full_store_table_is_store_table_full_until_handles_are_dropped(
    tmp_path: Path, make_host: Callable[..., Host]
) -> None:
    host = make_host({"default": f"sqlite:{tmp_path / 'd.db'}"}, Limits(max_open_buckets=4))
    results = steps(host, "fill:default:3", "open:default", "fill:default:1", "release", "fill:default:3")
    assert results == [
        ok(3),
        ok("default"),
        {"error": "store-table-full", "message": None, "opened": 0},
        ok(3),
        ok(3),
    ]


def test_limits_reach_the_guest_as_other(tmp_path: Path, make_host: Callable[..., Host]) -> None:
    host = make_host({"default": f"sqlite:{tmp_path / 'd.db'}"}, Limits(max_key_bytes=8, max_value_bytes=16))
    key, value = "k123456789", "v" * 17
    results = steps(host, "open:default", f"set:{key}=v", f"get:{key}", f"set:k={value}", "set:k=ok")
    assert results[0] == ok("default")
    for result in results[1:4]:
        assert result["error"] == "other"
    assert "max_key_bytes=8" in results[1]["message"]
    assert "max_key_bytes=8" in results[2]["message"]
    assert "max_value_bytes=16" in results[3]["message"]
    assert results[4] == ok(None)
    # A value written by another client that one call cannot carry is an error, not a trap.
    make_host({"default": f"sqlite:{tmp_path / 'd.db'}"}).bucket("default").set("big", b"x" * 17)
    assert steps(host, "open:default", "get:big")[1]["error"] == "other"


def test_get_keys_walks_every_page(tmp_path: Path, make_host: Callable[..., Host]) -> None:
    host = make_host({"default": f"sqlite:{tmp_path / 'd.db'}"}, Limits(list_page_size=3))
    keys = [f"k{i:02}" for i in range(10)]
    for key in reversed(keys):
        host.bucket("default").set(key, b"")
    assert steps(host, "open:default", "keys") == [ok("default"), ok(keys)]


def test_get_keys_refuses_more_than_one_call_carries() -> None:
    store = MemoryStore()
    session = _session(store)
    # Just under the limit: served whole.
    key_bytes = 4000
    fits = MAX_TRANSFER_BYTES // (key_bytes + 8)
    for i in range(fits):
        store.set(f"{i:08}".ljust(key_bytes, "x"), b"")
    assert len(get_keys(session, session.bucket(session.open_bucket("s")))) == fits
    store.set("z".ljust(key_bytes, "x"), b"")
    with pytest.raises(LimitExceeded, match=r"get-keys size limit.*list-keys"):
        get_keys(session, session.bucket(session.open_bucket("s")))


def _session(store: MemoryStore) -> KeyValueSession:
    return KeyValueSession(lambda _label: store, Limits(), NumberedCursors())


def test_a_spin_store_is_typed_as_spin_declares_it(host: Host) -> None:
    component = host.load(spin_guest())
    imports = host.imports(component)
    declared = {interface.name: interface for interface in INTERFACES}
    for name in (KV, VARS):
        assert {f: s for f, s in imports[name].items()} == {
            f.name: f.signature for f in declared[name].functions
        }


# ------------------------------------------------------------------ variables


VARIABLES = {"greeting": "hello", "empty": "", "api_key": "s3cr3t"}


def test_variables_get_and_spins_errors(host: Host) -> None:
    results = steps(
        host,
        "var:greeting",
        "var:empty",
        "var:missing",
        "var:Greeting",
        "var:",
        "var:9lives",
        "var:a__b",
        "var:a_",
        "var:a-b",
        variables=VARIABLES,
    )
    assert results == [
        ok("hello"),
        ok(""),
        error("undefined", 'no variable for "missing"'),
        error(
            "invalid-name",
            "\"Greeting\": invalid character 'G'. Variable names may contain only lower-case letters,"
            " numbers, and underscores.",
        ),
        error("invalid-name", '"": must not be empty'),
        error("invalid-name", '"9lives": must start with a lowercase ASCII letter'),
        error("invalid-name", '"a__b": must not contain multiple consecutive underscores'),
        error("invalid-name", '"a_": must end with a lowercase ASCII letter or digit'),
        error(
            "invalid-name",
            "\"a-b\": invalid character '-'. Variable names may contain only lower-case letters,"
            " numbers, and underscores.",
        ),
    ]


def test_a_component_given_no_variables_has_none(host: Host) -> None:
    assert steps(host, "var:greeting") == [error("undefined", 'no variable for "greeting"')]


def test_hostile_names_are_quoted_escaped_and_cut() -> None:
    assert name_problem("ok_name_2") is None
    long = "A" * 100_000
    with pytest.raises(InvalidName) as caught:
        get({}, long)
    assert len(str(caught.value)) < 400 and "(100000 characters)" in str(caught.value)
    with pytest.raises(InvalidName, match=r'^"a\\nb": invalid character'):
        get({}, "a\nb")
    with pytest.raises(InvalidName, match="invalid character 'é'"):
        get({}, "café")


# ------------------------------------------------------------- unprovided


#: The Spin interfaces Spin's SDKs import that wasikv does not serve, by who imports them.
UNPROVIDED = {
    # spin-sdk 3.4.1 (Python): every import of its spin-http world, used or not.
    "spin-sdk 3.4.1": [
        "fermyon:spin/llm@2.0.0",
        "fermyon:spin/redis@2.0.0",
        "fermyon:spin/mqtt@2.0.0",
        "fermyon:spin/postgres@2.0.0",
        "fermyon:spin/mysql@2.0.0",
        "fermyon:spin/sqlite@2.0.0",
        "fermyon:spin/rdbms-types@2.0.0",
        "spin:postgres/postgres@3.0.0",
        "spin:postgres/postgres@4.0.0",
        "spin:sqlite/sqlite@3.0.0",
    ],
    # Spin's JS SDK packages (only the ones an app uses).
    "@spinframework/spin-*": ["spin:postgres/postgres@3.0.0", "fermyon:spin/redis-types"],
    # Spin's Rust SDK 6 (Spin 4, async).
    "spin-sdk 6 (Rust)": [
        "spin:key-value/key-value@3.0.0",
        "spin:variables/variables@3.0.0",
        "spin:mqtt/mqtt@3.0.0",
        "spin:mysql/mysql@3.0.0",
        "spin:postgres/postgres@4.2.0",
        "spin:redis/redis@3.0.0",
        "spin:sqlite/sqlite@3.1.0",
    ],
    # Spin 1's unversioned package.
    "Spin 1": ["fermyon:spin/key-value", "fermyon:spin/config", "fermyon:spin/http"],
}


@pytest.mark.parametrize("name", sorted({n for names in UNPROVIDED.values() for n in names}))
def test_spin_interfaces_wasikv_does_not_serve_are_named(host: Host, name: str) -> None:
    assert name not in host.provided and SPIN_PACKAGES.match(name)
    assert not_provided(name).startswith(f"{name} is not provided by wasikv")


@pytest.mark.parametrize(
    "name",
    [
        KV,
        VARS,
        "wasi:keyvalue/store@0.2.0-draft2",
        "wasi:config/store@0.2.0-draft-2024-09-27",
        "wasi:http/types@0.2.0",
        "fermyon:spinx/llm@2.0.0",
        "fermyon:spin/llm@2.0.0/extra",
        "fermyon:spin/",
        "spin:sqlite",
        "myspin:sqlite/sqlite@3.0.0",
        "spin:sqlite/sqlite@3.0.0\n",
    ],
)
def test_other_names_are_not_spin_ones_wasikv_lacks(host: Host, name: str) -> None:
    assert name in host.provided or not SPIN_PACKAGES.match(name)


def test_inspect_serves_spins_key_value_and_variables(host: Host) -> None:
    report = inspect_component(host, spin_guest())
    providers = {item.name: item.provider for item in report.imports}
    assert providers[KV] == providers[VARS] == "wasikv"
    assert report.runnable and report.traps == [] and report.problems == []


def test_inspect_lists_the_spin_imports_wasikv_does_not_provide(host: Host) -> None:
    report = inspect_component(host, spin_guest("spin-platform"))
    others = ("llm", "mqtt", "mysql", "postgres", "redis", "sqlite")
    missing = [f"fermyon:spin/{name}@2.0.0" for name in others]
    # mysql and postgres `use` rdbms-types: the component imports it too.
    assert sorted(report.traps) == sorted([*missing, "fermyon:spin/rdbms-types@2.0.0"])
    by_name = {item.name: item for item in report.imports}
    assert by_name[KV].provider == by_name[VARS].provider == "wasikv"
    for name in report.traps:
        assert by_name[name].provider is None
        assert by_name[name].problems == [f"{not_provided(name)}; its calls trap"]
    assert by_name["fermyon:spin/llm@2.0.0"].functions["infer"].startswith("func(model: string")
    assert report.problems == []
    text = report.render()
    assert "  imports fermyon:spin/llm@2.0.0: not provided by wasikv; calls trap" in text
    assert json.loads(json.dumps(report.to_json()))["traps"] == report.traps


def test_a_spin_app_importing_every_spin_interface_runs_and_a_call_of_one_wasikv_lacks_traps(
    host: Host,
) -> None:
    # Key-value and variables served beside the trap-linked interfaces.
    results = steps(host, "open:default", "set:k=v", "keys", "var:greeting", world="spin-platform")
    assert results == [ok("default"), ok(None), ok(["k"]), error("undefined", 'no variable for "greeting"')]
    with pytest.raises(GuestTrap, match=r"fermyon:spin/sqlite@2\.0\.0 is not provided by wasikv") as caught:
        steps(host, "open:default", "sqlite:default", world="spin-platform")
    assert "[static]connection.open" in str(caught.value)
