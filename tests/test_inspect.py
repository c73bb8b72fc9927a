"""`wasikv inspect`: imports, exports, providers and worlds of real components."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from .support import COMPILE_CACHE, foreign_guest_wasm, guest_wasm


def inspect(path: Path, *flags: str) -> tuple[int, str, str]:
    done = subprocess.run(
        [sys.executable, "-m", "wasikv", "inspect", str(path), *flags],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "WASIKV_CACHE_DIR": str(COMPILE_CACHE)},
    )
    return done.returncode, done.stdout, done.stderr


def report(path: Path) -> dict[str, Any]:
    code, out, err = inspect(path, "--json")
    data: dict[str, Any] = json.loads(out)
    assert code == (0 if data["runnable"] else 1), err
    return data


def imports_by_name(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in data["imports"]}


def worlds(data: dict[str, Any]) -> dict[str, bool]:
    return {world["world"]: world["fits"] for world in data["worlds"]}


def test_a_draft_guest_is_served_in_the_draft_shape() -> None:
    data = report(foreign_guest_wasm("keyvalue-0.2.0-draft"))
    assert data["runnable"] and data["problems"] == []
    assert data["keyvalue"] == ["wasi:keyvalue@0.2.0-draft"]
    store = imports_by_name(data)["wasi:keyvalue/store@0.2.0-draft"]
    assert store["provider"] == "wasikv (wasi:keyvalue@0.2.0-draft)"
    assert store["functions"]["[method]bucket.list-keys"] == (
        "func(self: borrow<bucket>, cursor: option<u64>) -> result<key-response, error>"
    )
    assert imports_by_name(data)["wasi:cli/environment@0.2.9"]["provider"] == "wasmtime WASI 0.2"
    assert worlds(data) == {
        "wasikv:app/command": True,
        "wasi:http/proxy": False,
        "wasikv:app/http-trigger": False,
        "wasikv:app/spin-http": False,
        "wasikv:app/watch-trigger": True,
    }


OUTBOUND_RULE = "(requests only where allowed_outbound_hosts allows; none by default)"


def test_an_http_guest_of_the_sdk_is_spin_shaped() -> None:
    data = report(guest_wasm("examples/http-counter", "wasikv:app/http-trigger"))
    assert data["runnable"] and data["problems"] == []
    assert data["keyvalue"] == ["wasi:keyvalue@0.2.0-draft2 (Spin)"]
    imports = imports_by_name(data)
    http = [(name, imports[name]["provider"]) for name in imports if name.startswith("wasi:http/")]
    assert sorted(http) == [
        ("wasi:http/outgoing-handler@0.2.9", f"wasikv wasi:http {OUTBOUND_RULE}"),
        ("wasi:http/types@0.2.9", f"wasikv wasi:http {OUTBOUND_RULE}"),
    ]
    # Its streams are wasmtime's until it may reach a host, then wasikv's (they share resources).
    assert imports["wasi:io/streams@0.2.9"]["provider"] == (
        "wasmtime WASI 0.2, or wasikv's Python WASI when allowed_outbound_hosts allows a host"
    )
    assert worlds(data) == {
        "wasikv:app/command": False,
        "wasi:http/proxy": False,
        "wasikv:app/http-trigger": True,
        "wasikv:app/spin-http": False,
        "wasikv:app/watch-trigger": False,
    }
    command = next(w for w in data["worlds"] if w["world"] == "wasikv:app/command")
    assert "does not export wasi:cli/run@0.2.0" in command["problem"]


def test_text_report_and_refusals() -> None:
    code, out, _ = inspect(foreign_guest_wasm("keyvalue-0.2.0-draft2-upstream"))
    assert code == 0
    assert "wasi:keyvalue: wasi:keyvalue@0.2.0-draft2 (upstream)" in out
    assert "wasi:keyvalue/batch@0.2.0-draft2      wasikv (wasi:keyvalue@0.2.0-draft2 (upstream))" in out
    # A mistyped component: inspected, not refused; every mismatch shown, exit 1.
    data = report(foreign_guest_wasm("keyvalue-0.2.0-draft", relabel="0.2.0-draft2"))
    assert not data["runnable"]
    store = imports_by_name(data)["wasi:keyvalue/store@0.2.0-draft2"]
    assert store["provider"] is None
    assert any("[method]bucket.list-keys: component expects" in p for p in store["problems"])
    # A component mixing WITs of wasi:keyvalue.
    mixed = report(foreign_guest_wasm("keyvalue-0.2.0-draft", "keyvalue-0.2.0-draft2-upstream", name="mixed"))
    assert not mixed["runnable"]
    assert any("different WITs of one package" in p for p in mixed["problems"])


def test_not_a_component(tmp_path: Path) -> None:
    (tmp_path / "x.wasm").write_bytes(b"\0asm\x01\0\0\0")
    code, out, err = inspect(tmp_path / "x.wasm")
    assert code == 1 and out == ""
    assert err.startswith("Error: ") and "core WebAssembly module" in err
