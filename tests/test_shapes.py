"""One host for every wasi:keyvalue guest: Spin's draft2, upstream's draft2 and 0.2.0-draft.

The foreign guests are real components built in the suite from the vendored
upstream WITs (tests/wit); wasikv's own SDK guests are Spin-shaped.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from wasikv import ComponentError, Host, Limits, StoreError
from wasikv.interfaces.keyvalue import NumberedCursors

from .support import foreign_guest_wasm, run_in

DRAFT = "keyvalue-0.2.0-draft"
UPSTREAM = "keyvalue-0.2.0-draft2-upstream"
PAGE = 7  # list-keys page size, so that 23 keys take 4 pages


def run_foreign(host: Host, shape: str, *args: str) -> Any:
    out, err = io.BytesIO(), io.BytesIO()
    code = host.run(foreign_guest_wasm(shape), list(args), stdout=out, stderr=err)
    assert code == 0, err.getvalue().decode()
    return json.loads(out.getvalue())


@pytest.mark.parametrize("shape", [DRAFT, UPSTREAM])
def test_foreign_guests_pass_the_checks_of_their_wit(
    make_host: Callable[..., Host], store_url: str, shape: str
) -> None:
    host = make_host({"default": store_url}, limits=Limits(list_page_size=PAGE))
    report = run_foreign(host, shape, "check", "default")
    assert report["draft"] is (shape == DRAFT)
    assert report["open_unknown"] == {"error": "NoSuchStore", "message": None}
    assert report["get"] == "1" and report["missing"] is None
    assert report["exists"] == [True, False] and report["deleted"] == [False, None]
    # Every key once, in order, over pages of PAGE keys, whatever the cursor type.
    walk = report["walk"]
    assert walk["keys"] == [f"page/{i:02d}" for i in range(23)] and walk["pages"] == 4
    assert walk["cursor_types"] == (["int"] if shape == DRAFT else ["str"])
    assert report["forged_cursor"]["error"] == "Other"
    # Upstream's get-many shape: none for a missing key, the pair for a present one.
    assert report["get_many"] == [["page/00", "page/00"], None, ["page/22", "page/22"]]
    assert report["after_delete_many"] == []
    assert report["increment"] == [5, 7]
    if shape == DRAFT:
        assert "unknown or expired cursor 12345" in report["forged_cursor"]["message"]
        # u64 results and deltas outside the stored s64 counter: errors, never a wrap.
        assert report["increment_negative"]["error"] == "Other"
        assert "u64 result cannot hold" in report["increment_negative"]["message"]
        assert report["neg_after"] == "-5"
        assert "does not fit the stored counter" in report["increment_huge"]["message"]
        assert "overflows s64" in report["increment_overflow"]["message"]
        assert host.bucket().get("top") == str(2**63 - 2).encode()
    else:
        assert report["cas_current"] == "7" and report["after_swap"] == "100"
        assert report["increment_negative"] == -50


def test_guests_of_every_wit_share_one_store(make_host: Callable[..., Host], tmp_path: Path) -> None:
    host = make_host({"default": f"sqlite:{tmp_path / 'shared.db'}"})
    assert run_foreign(host, DRAFT, "incr", "counter", "5") == {"ok": 5}
    # wasikv's own (Spin-shaped) conformance guest increments the same counter.
    assert run_in(host, "conformance", ["counter-loop", "1"]).json()["last"] == 6
    assert run_foreign(host, UPSTREAM, "incr", "counter", "1") == {"ok": 7}
    assert run_foreign(host, DRAFT, "set", "note", "from draft") is None
    assert run_foreign(host, UPSTREAM, "get", "note") == "from draft"
    assert run_foreign(host, DRAFT, "get", "counter") == "7"
    assert host.bucket().get("counter") == b"7"


def test_u64_cursors_outlive_the_instance_that_got_them(make_host: Callable[..., Host]) -> None:
    host = make_host({"default": "memory:", "other": "memory:other"}, limits=Limits(list_page_size=2))
    for key in ("a", "b", "c", "d", "e"):
        host.bucket().set(key, b"")
    keys, cursor = run_foreign(host, DRAFT, "page")
    seen = list(keys)
    while cursor is not None:
        # Each page in a fresh instance, as an HTTP guest paging for a client would.
        keys, cursor = run_foreign(host, DRAFT, "page", str(cursor))
        seen += keys
    assert seen == ["a", "b", "c", "d", "e"]


def test_numbered_cursors_refuse_other_labels_and_expire() -> None:
    cursors = NumberedCursors(capacity=2)
    first = cursors.issue("a", "k1")
    assert cursors.resolve(first, "a") == "k1"
    with pytest.raises(StoreError, match="belongs to another bucket"):
        cursors.resolve(first, "b")
    second, third = cursors.issue("a", "k2"), cursors.issue("a", "k3")
    with pytest.raises(StoreError, match="unknown or expired cursor"):
        cursors.resolve(first, "a")
    assert [cursors.resolve(n, "a") for n in (second, third)] == ["k2", "k3"]
    assert len({first, second, third}) == 3


def test_a_component_mixing_wits_is_refused(make_host: Callable[..., Host]) -> None:
    mixed = foreign_guest_wasm(DRAFT, UPSTREAM, name="mixed")
    host = make_host({"default": "memory:"})
    with pytest.raises(ComponentError) as refused:
        host.load(mixed)
    message = str(refused.value)
    assert "imports interfaces of different WITs of one package" in message
    assert "wasi:keyvalue/store@0.2.0-draft is wasi:keyvalue@0.2.0-draft;" in message
    assert "wasi:keyvalue/batch@0.2.0-draft2 is wasi:keyvalue@0.2.0-draft2 (upstream)" in message


WATCH_MANIFEST = """\
spin_manifest_version = 2
[application]
name = "watchers"

[[trigger.key-value]]
store = "default"
prefix = "jobs/"
component = "{name}"

[component.{name}]
source = "{name}.wasm"
key_value_stores = ["default"]
"""


@pytest.mark.parametrize("shape", [DRAFT, UPSTREAM])
def test_the_watch_trigger_serves_both_watcher_versions(tmp_path: Path, shape: str) -> None:
    from wasikv.app.loader import load_app
    from wasikv.triggers.watch import WatchTriggers

    from .support import COMPILE_CACHE

    (tmp_path / "w.wasm").write_bytes(foreign_guest_wasm(shape).read_bytes())
    (tmp_path / "wasikv.toml").write_text(WATCH_MANIFEST.format(name="w"))
    loaded = load_app(tmp_path / "wasikv.toml")
    with Host(loaded.stores, cache_dir=COMPILE_CACHE) as host:
        watchers = WatchTriggers.from_app(loaded, host)
        expected = "wasi:keyvalue/watcher@" + ("0.2.0-draft" if shape == DRAFT else "0.2.0-draft2")
        assert watchers.runners[0].watcher.interface == expected
        bucket = host.bucket()
        with watchers:
            bucket.set("jobs/1", b"one")
            bucket.delete("jobs/1")
            assert watchers.runners[0].wait_for(bucket.store.last_change(), timeout=30)
        assert watchers.runners[0].delivered == 2
        assert bucket.get("seen/jobs/1") == b"deleted"
