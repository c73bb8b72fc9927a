"""SDK guest: exercises the Pythonic layer `wasikv_sdk.key_value`.

Usage: `<component> sdk [MAX_OPEN_CAS]`. Expects the store "default" (granted),
"secret" (defined, not granted) and no store "nope"; with MAX_OPEN_CAS (the
host's limit) it also checks at the end that every cas handle was released.
Prints exactly one JSON line of observations; an unexpected exception is
reported as `{"exception": ..., "traceback": ...}` and fails the run (exit
status 1).
"""

from __future__ import annotations

import json
import sys
import traceback
from typing import Any

from componentize_py_types import Err

import wasikv_sdk
import wasikv_sdk.wit.exports
from wasikv_sdk import key_value
from wasikv_sdk.errors import AccessDenied, CasConflict, KeyValueError, NoSuchStore, StoreError

Record = dict[str, Any]


def text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


def caught(fn: Any) -> Record:
    """Run `fn`; record the SDK exception it raises (or its result)."""
    try:
        result = fn()
    except KeyValueError as e:
        return {"raised": type(e).__name__, "msg": str(e), "is_kv_error": True}
    except (TypeError, ValueError) as e:
        return {"raised": type(e).__name__, "msg": str(e), "is_kv_error": False}
    return {"returned": result}


def keys_section(b: key_value.Bucket) -> Record:
    written = [f"{group}/{i:03d}" for group in ("a", "b", "c") for i in range(12 if group != "c" else 5)]
    for key in reversed(written):
        b.set(key, key.encode())
    everything = list(b.keys())
    page, cursor = b.list_page()
    pages = 1
    while cursor is not None:
        _, cursor = b.list_page(cursor)
        pages += 1
    prefix_b = list(b.keys("b/"))
    return {
        "written": len(written),
        "all": len(everything),
        "all_sorted": everything == sorted(everything),
        "all_equal": everything == sorted(written),
        "first_page_len": len(page),
        "pages": pages,
        "prefix_b": prefix_b,
        "prefix_b_ok": prefix_b == [k for k in sorted(written) if k.startswith("b/")],
        "prefix_a_count": sum(1 for _ in b.keys("a/")),
        "prefix_c_count": sum(1 for _ in b.keys("c/")),
        "prefix_empty_count": sum(1 for _ in b.keys("")),
        "prefix_missing": list(b.keys("zzz")),
        "prefix_before_all": list(b.keys("0")),
        "bad_cursor": caught(lambda: b.list_page("garbage!")),
    }


def batch_section(b: key_value.Bucket) -> Record:
    b.set_many({"m1": b"1", "m2": b"2"})
    b.set_many([("m3", b"3")])
    b.set_many(iter([("m4", bytearray(b"4"))]))  # type: ignore[list-item]
    got = b.get_many(["m1", "mx", "m3", "m1", "m4"])
    b.delete_many(["m1", "mx"])
    after = b.get_many(k for k in ("m1", "m2", "m3"))
    return {
        "get_many": {k: text(v) for k, v in got.items()},
        "get_many_order": list(got),
        "after_delete": {k: text(v) for k, v in after.items()},
        "empty": b.get_many([]),
        "bad_value": caught(lambda: b.set_many([("m5", "not bytes")])),  # type: ignore[list-item]
    }


def single_section(b: key_value.Bucket) -> Record:
    out: Record = {"get_missing": text(b.get("s"))}
    b.set("s", b"hello")
    out["get"] = text(b.get("s"))
    out["exists"] = b.exists("s")
    b.set("s-empty", b"")
    out["get_empty"] = text(b.get("s-empty"))
    out["exists_empty"] = b.exists("s-empty")
    b.delete("s")
    b.delete("s")
    out["exists_deleted"] = b.exists("s")
    out["bad_key_type"] = caught(lambda: b.get(42))  # type: ignore[arg-type]
    out["bad_value_type"] = caught(lambda: b.set("s", "text"))  # type: ignore[arg-type]
    return out


def increment_section(b: key_value.Bucket) -> Record:
    return {
        "first": b.increment("cnt"),
        "plus_10": b.increment("cnt", 10),
        "minus_20": b.increment("cnt", -20),
        "stored": text(b.get("cnt")),
        "not_a_number": caught(lambda: (b.set("nan", b"abc"), b.increment("nan"))[1]),
        "delta_too_big": caught(lambda: b.increment("cnt", 2**63)),
    }


def cas_section(b: key_value.Bucket) -> Record:
    out: Record = {}
    with b.cas("c") as cas:
        out["current_missing"] = text(cas.current)
        cas.swap(b"1")
        out["closed_after_swap"] = cas.closed
    out["after_swap"] = text(b.get("c"))

    with b.cas("c") as cas:
        out["current"] = text(cas.current)
        b.set("c", b"2")
        out["conflict"] = caught(lambda: cas.swap(b"3"))
        out["second_swap"] = caught(lambda: cas.swap(b"4"))
    out["after_conflict"] = text(b.get("c"))

    with b.cas("c") as cas:
        b.set("c", b"2")  # same bytes: still a change
        out["conflict_same_bytes"] = caught(lambda: cas.swap(b"5"))

    with b.cas("unused") as cas:
        out["unused_current"] = text(cas.current)
    out["unused_closed"] = cas.closed
    return out


def update_section(b: key_value.Bucket) -> Record:
    def bump(current: bytes | None) -> bytes:
        return str(int(current or b"0") + 1).encode()

    out: Record = {"first": text(b.update("u", bump)), "second": text(b.update("u", bump))}
    out["stored"] = text(b.get("u"))

    calls = 0

    def meddle(current: bytes | None) -> bytes:
        # Writes the key itself, so every swap loses.
        nonlocal calls
        calls += 1
        b.set("u2", str(calls).encode())
        return b"never"

    out["always_conflicting"] = caught(lambda: b.update("u2", meddle, max_attempts=3))
    out["always_conflicting_calls"] = calls
    out["always_conflicting_stored"] = text(b.get("u2"))

    seen: list[str | None] = []

    def conflict_once(current: bytes | None) -> bytes:
        seen.append(text(current))
        if len(seen) == 1:
            b.set("u3", b"other")
        return b"mine"

    out["retry_once"] = text(b.update("u3", conflict_once))
    out["retry_once_seen"] = seen
    out["retry_once_stored"] = text(b.get("u3"))

    def boom(current: bytes | None) -> bytes:
        raise ValueError("boom")

    out["fn_raises"] = caught(lambda: b.update("u4", boom))
    out["fn_raises_exists"] = b.exists("u4")
    out["max_attempts_zero"] = caught(lambda: b.update("u", bump, max_attempts=0))
    return out


def leak_section(b: key_value.Bucket) -> Record:
    """Many handles in a row: fails if the SDK leaks cas handles (the host limits open handles)."""
    rounds = 50
    for i in range(rounds):
        with b.cas("leak") as cas:
            if i % 2:
                cas.swap(str(i).encode())
        with b.cas("leak") as cas:
            b.set("leak", b"x")
            try:
                cas.swap(b"y")
            except CasConflict:
                pass
        b.update("leak-u", lambda cur: (cur or b"")[-8:] + b".")
    return {"rounds": rounds, "ok": True}


def errors_section() -> Record:
    return {
        "no_such_store": caught(lambda: key_value.open("nope")),
        "access_denied": caught(lambda: key_value.open("secret")),
        "no_such_store_is": issubclass(NoSuchStore, KeyValueError),
        "hierarchy": all(
            issubclass(cls, KeyValueError) for cls in (NoSuchStore, AccessDenied, StoreError, CasConflict)
        ),
    }


def close_section() -> Record:
    b = key_value.open_default()
    is_protocol = isinstance(b, wasikv_sdk.BucketProtocol)
    b.close()
    b.close()
    return {
        "is_protocol": is_protocol,
        "closed": b.closed,
        "use_after_close": caught(lambda: b.get("k")),
        "repr": repr(b),
    }


def capacity_section(b: key_value.Bucket, max_open_cas: int) -> Record:
    """After everything above, all `max_open_cas` handles must still be available."""
    handles: list[key_value.Cas] = []
    opened = 0
    try:
        for i in range(max_open_cas):
            handles.append(b.cas(f"cap{i}"))
            opened += 1
        one_more = caught(lambda: handles.append(b.cas("cap-extra")))
    finally:
        for handle in handles:
            handle.close()
    return {"opened": opened, "one_more": one_more}


def observe(max_open_cas: int | None) -> Record:
    out: Record = {}
    with key_value.open_default() as b:
        out["label"] = b.label
        out["keys"] = keys_section(b)  # first: it expects only its own keys
        out["single"] = single_section(b)
        out["batch"] = batch_section(b)
        out["increment"] = increment_section(b)
        out["cas"] = cas_section(b)
        out["update"] = update_section(b)
        out["leak"] = leak_section(b)
        if max_open_cas is not None:
            out["capacity"] = capacity_section(b, max_open_cas)
    out["closed_by_with"] = b.closed
    out["errors"] = errors_section()
    out["close"] = close_section()
    return out


def emit(record: Record) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


class Run(wasikv_sdk.wit.exports.Run):
    def run(self) -> None:
        try:
            # Optional argv[1]: the host's max_open_cas, to check that no handle leaked.
            record = observe(int(sys.argv[1]) if len(sys.argv) > 1 else None)
        except Exception as e:  # report instead of trapping, then fail the run
            detail = "".join(traceback.format_exception(e))
            emit({"exception": f"{type(e).__name__}: {e}", "traceback": detail})
            raise Err(None) from None
        emit(record)
