"""The conformance guest against every store (memory, SQLite, Redis): each function and error path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from wasikv import Host, Limits

from .support import GuestRun, run_in

OTHER = "other"


@pytest.fixture
def scenario(make_host: Callable[..., Host], store_url: str) -> Callable[..., Any]:
    def run(*args: str, limits: Limits | None = None, grants: list[str] | None = None) -> Any:
        host = make_host({"default": store_url, "secret": "memory:secret"}, limits=limits)
        result: GuestRun = run_in(host, "conformance", args, grants=grants)
        report = result.json()
        assert "exception" not in report, report
        assert result.exit_code == 0, result.stderr
        assert report["scenario"] == args[0]
        return report

    return run


def err_other(outcome: dict[str, Any], *needles: str) -> None:
    assert outcome["err"] == OTHER, outcome
    for needle in needles:
        assert needle in outcome["msg"], outcome


def test_open_unknown_label_is_no_such_store(scenario: Callable[..., Any]) -> None:
    assert scenario("open-unknown")["open"] == {"err": "no-such-store"}


def test_open_ungranted_label_is_access_denied(scenario: Callable[..., Any]) -> None:
    assert scenario("open-denied", grants=["default"])["open"] == {"err": "access-denied"}


def test_basic_operations(scenario: Callable[..., Any]) -> None:
    r = scenario("basic")
    assert r["get_missing"] == {"ok": None}
    assert r["exists_missing"] == {"ok": False}
    assert r["get"] == {"ok": "v1"} and r["exists"] == {"ok": True}
    assert r["get_overwritten"] == {"ok": "v2"}
    assert r["get_empty"] == {"ok": ""} and r["exists_empty"] == {"ok": True}
    assert r["delete_missing"] == {"ok": None}
    assert r["get_deleted"] == {"ok": None} and r["exists_deleted"] == {"ok": False}
    assert r["binary_roundtrip"] == {"ok": True}
    for key in ("ключ", "🔑", ""):
        assert r["unicode"][key]["get_matches"] == {"ok": True}, key
        assert r["unicode"][key]["exists"] == {"ok": True}, key
    assert r["listed"] == sorted(r["listed"])
    assert set(r["listed"]) >= {"", "ключ", "🔑", "empty"}
    assert r["list_error"] is None


@pytest.mark.parametrize(("page", "count"), [(7, 50), (5, 10), (1000, 2500), (3, 0)])
def test_list_keys_pages_exactly_once(scenario: Callable[..., Any], page: int, count: int) -> None:
    r = scenario("list", str(page), str(count), limits=Limits(list_page_size=page))
    assert r["walk_error"] is None and r["write_errors"] == []
    assert r["total"] == count
    assert r["sorted"] and r["unique"] and r["equals_written"]
    assert r["within_page_size"] and r["nonfinal_pages_full"]
    assert max(r["page_sizes"]) <= page
    err_other(r["garbage_cursor"], "malformed cursor")


def test_increment_semantics(scenario: Callable[..., Any]) -> None:
    r = scenario("increment")
    assert r["inc_missing"] == {"ok": 5} and r["get_after_missing"] == {"ok": "5"}
    assert r["inc_negative"] == {"ok": -2} and r["get_negative"] == {"ok": "-2"}
    assert r["inc_100"] == {"ok": 101} and r["get_101"] == {"ok": "101"}
    err_other(r["inc_abc"], "not a decimal integer")
    assert r["get_abc"] == {"ok": "abc"}
    err_other(r["inc_max"], "overflows")
    assert r["get_max"] == {"ok": "9223372036854775807"}
    err_other(r["inc_min"], "overflows")
    assert r["get_min"] == {"ok": "-9223372036854775808"}
    err_other(r["inc_007"], "not a decimal integer")
    assert r["get_007"] == {"ok": "007"}


def test_cas_is_version_based(scenario: Callable[..., Any]) -> None:
    r = scenario("cas")
    created = r["missing_create"]
    assert created["current"] == {"ok": None} and created["swap"] == {"ok": None}
    assert created["get"] == {"ok": "one"}
    for case, latest in (("aba", "A"), ("same_bytes", "S")):
        c = r[case]
        assert c["swap"] == {"err": "cas-failed"}, case
        assert c["fresh_current"] == {"ok": latest}, case
        assert c["fresh_swap"] == {"ok": None} and c["get"] == {"ok": "Y"}, case
    deleted = r["deleted"]
    assert deleted["swap"] == {"err": "cas-failed"} and deleted["fresh_current"] == {"ok": None}
    assert deleted["get"] == {"ok": None}
    created_later = r["created"]
    assert created_later["current"] == {"ok": None}
    assert created_later["swap"] == {"err": "cas-failed"}
    assert created_later["fresh_current"] == {"ok": "x"} and created_later["fresh_swap"] == {"ok": None}
    assert created_later["get"] == {"ok": "z"}


def test_batch_operations(scenario: Callable[..., Any]) -> None:
    r = scenario("batch")
    assert r["get_many"] == {"ok": [["k1", "v1"], ["missing", None], ["k3", "v3"], ["k1", "v1"]]}
    assert r["delete_many"] == {"ok": None}
    assert r["get_many_after"] == {"ok": [["k1", None], ["k2", "v2"], ["k3", "v3"]]}
    assert r["get_many_empty"] == {"ok": []}


def test_limits_are_errors_not_traps(scenario: Callable[..., Any]) -> None:
    limits = Limits(
        max_key_bytes=64, max_value_bytes=1024, max_batch_keys=10, max_open_buckets=4, max_open_cas=4
    )
    r = scenario("limits", limits=limits)
    assert r["key_max"] == {"ok": None} and r["value_max"] == {"ok": None}
    for name in ("key_too_long", "key_too_long_get", "key_too_long_utf8", "batch_key_too_long"):
        err_other(r[name], "key size limit", "max_key_bytes=64")
    for name in ("value_too_big", "set_many_value_too_big"):
        err_other(r[name], "value size limit", "max_value_bytes=1024")
    assert r["batch_max"] == {"ok": 10}
    for name in ("batch_too_many_get", "batch_too_many_set", "batch_too_many_delete"):
        err_other(r[name], "batch size limit", "max_batch_keys=10")
    assert [o.get("err") for o in r["open_buckets"]] == [None, None, None, None, OTHER]
    err_other(r["open_buckets"][4], "max_open_buckets=4")
    assert r["open_after_drop"] == {"ok": True}
    assert [o.get("err") for o in r["cas_handles"]] == [None, None, None, None, OTHER]
    err_other(r["cas_handles"][4], "max_open_cas=4")
    assert r["cas_after_drop"] == {"ok": True}


@pytest.mark.parametrize("size", [0, 1, 65536, 1024 * 1024])
def test_values_round_trip_byte_exact(scenario: Callable[..., Any], size: int) -> None:
    r = scenario("bigvalue", str(size))
    assert r["set"] == {"ok": None}
    assert r["get"] == {"ok": {"len": size, "sha256_equal": True}}


def test_sdk_layer(make_host: Callable[..., Host], store_url: str) -> None:
    limits = Limits(list_page_size=5, max_open_cas=4, max_open_buckets=4)
    host = make_host({"default": store_url, "secret": "memory:secret"}, limits=limits)
    result = run_in(host, "sdk", ["4"], grants=["default"])
    assert result.exit_code == 0, result.stderr + result.stdout
    r = result.json()
    assert "exception" not in r, r
    keys = r["keys"]
    assert keys["written"] == keys["all"] == 29 and keys["pages"] == 6
    assert keys["all_sorted"] and keys["all_equal"] and keys["prefix_b_ok"]
    assert keys["prefix_b"] == [f"b/{i:03}" for i in range(12)]
    assert (keys["prefix_missing"], keys["prefix_before_all"]) == ([], [])
    assert keys["bad_cursor"]["raised"] == "StoreError"
    single = r["single"]
    assert (single["get_missing"], single["get"], single["get_empty"]) == (None, "hello", "")
    assert single["exists"] and single["exists_empty"] and not single["exists_deleted"]
    assert r["batch"]["get_many"] == {"m1": "1", "mx": None, "m3": "3", "m4": "4"}
    assert r["batch"]["get_many_order"] == ["m1", "mx", "m3", "m4"]
    assert r["batch"]["after_delete"] == {"m1": None, "m2": "2", "m3": "3"}
    inc = r["increment"]
    assert (inc["first"], inc["plus_10"], inc["minus_20"], inc["stored"]) == (1, 11, -9, "-9")
    assert inc["not_a_number"]["raised"] == "StoreError"
    cas = r["cas"]
    assert cas["after_swap"] == "1" and cas["after_conflict"] == "2"
    assert cas["conflict"]["raised"] == cas["conflict_same_bytes"]["raised"] == "CasConflict"
    update = r["update"]
    assert (update["first"], update["second"], update["stored"]) == ("1", "2", "2")
    assert update["always_conflicting"]["raised"] == "CasConflict"
    assert update["retry_once"] == update["retry_once_stored"] == "mine"
    assert r["leak"]["ok"] and r["capacity"]["opened"] == 4
    assert r["capacity"]["one_more"]["raised"] == "StoreError"
    errors = r["errors"]
    assert errors["no_such_store"]["raised"] == "NoSuchStore"
    assert errors["access_denied"]["raised"] == "AccessDenied"
    assert all(e["is_kv_error"] for e in errors.values() if isinstance(e, dict))
