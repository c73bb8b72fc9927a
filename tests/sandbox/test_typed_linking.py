"""Typed linking: a component whose imports or exports have other types is refused before it runs."""

from __future__ import annotations

import ctypes
import shutil
import struct
from pathlib import Path

import pytest

from wasikv import ComponentError, Host, create_app
from wasikv.runtime import _canonical as cv

from ..support import COMPILE_CACHE, guest_wasm
from .conftest import run_wasikv

LIST_KEYS = (
    "wasi:keyvalue/store@0.2.0-draft2 [method]bucket.list-keys: component expects "
    "func(self: borrow<bucket>, cursor: option<u64>) -> result<key-response, error>, "
    "wasikv implements func(self: borrow<bucket>, cursor: option<string>) -> result<key-response, error>"
)
INCREMENT = (
    "wasi:keyvalue/atomics@0.2.0-draft2 increment: component expects "
    "func(bucket: borrow<bucket>, key: string, delta: u64) -> result<u64, error>, "
    "wasikv implements func(bucket: borrow<bucket>, key: string, delta: s64) -> result<s64, error>"
)


def test_mistyped_imports_are_refused_with_every_difference(mistyped_wasm: Path, tmp_path: Path) -> None:
    with Host({"default": "memory:"}, cache_dir=COMPILE_CACHE) as host:
        with pytest.raises(ComponentError) as refused:
            host.run(mistyped_wasm, ["list"])
        message = str(refused.value)
        assert f"{mistyped_wasm}: {LIST_KEYS}" in message
        assert (
            "the component's key-response is key-response { keys: list<string>, cursor: option<u64> }"
            in message
        )
        assert f"{mistyped_wasm}: {INCREMENT}" in message
        # Loading alone refuses it: nothing is ever instantiated.
        with pytest.raises(ComponentError, match="list-keys"):
            host.load(mistyped_wasm)
        assert host.bucket().get("n") is None


@pytest.mark.parametrize("call", ["list", "increment"])
def test_wasikv_run_refuses_a_mistyped_component(mistyped_wasm: Path, tmp_path: Path, call: str) -> None:
    done = run_wasikv("run", "--store", "default=memory:", str(mistyped_wasm), call, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(f"Error: {mistyped_wasm}: wasi:keyvalue/")
    assert LIST_KEYS in done.stderr and INCREMENT in done.stderr
    assert "Traceback" not in done.stderr and "panicked" not in done.stderr


def _manifest(tmp_path: Path, wasm: Path, trigger: str) -> Path:
    shutil.copy(wasm, tmp_path / "app.wasm")
    triggers = {
        "http": '[[trigger.http]]\nroute = "/..."\ncomponent = "app"\n',
        "watch": '[[trigger.key-value]]\nstore = "default"\ncomponent = "app"\n',
    }
    (tmp_path / "wasikv.toml").write_text(
        'spin_manifest_version = 2\n[application]\nname = "t"\n'
        + triggers[trigger]
        + '[component.app]\nsource = "app.wasm"\nkey_value_stores = ["default"]\n'
    )
    return tmp_path / "wasikv.toml"


@pytest.mark.parametrize("trigger", ["http", "watch"])
def test_up_refuses_a_mistyped_component_at_start_up(
    mistyped_wasm: Path, tmp_path: Path, trigger: str
) -> None:
    manifest = _manifest(tmp_path, mistyped_wasm, trigger)
    with pytest.raises(ComponentError) as refused:
        create_app(manifest, cache_dir=COMPILE_CACHE)
    assert "'app'" in str(refused.value) and LIST_KEYS in str(refused.value)


def test_up_refuses_a_component_without_the_export_its_trigger_calls(tmp_path: Path) -> None:
    # A command component serves neither HTTP nor a watcher.
    manifest = _manifest(tmp_path, guest_wasm("examples/counter"), "http")
    with pytest.raises(ComponentError, match=r"component 'app'.*does not export wasikv:app/http@0.1.0"):
        create_app(manifest, cache_dir=COMPILE_CACHE)
    done = run_wasikv("up", "--listen", "127.0.0.1:1", cwd=tmp_path)
    assert done.returncode == 1 and "Serving" not in done.stdout
    assert "does not export wasikv:app/http@0.1.0" in done.stderr


def test_a_watcher_export_with_other_types_is_refused(tmp_path: Path) -> None:
    # The http-counter example exports no watcher; the check names the interface and the world.
    manifest = _manifest(tmp_path, guest_wasm("examples/http-counter", "wasikv:app/http-trigger"), "watch")
    with pytest.raises(ComponentError, match=r"wasi:keyvalue/watcher@0.2.0-draft2.*wasikv:app/watch-trigger"):
        create_app(manifest, cache_dir=COMPILE_CACHE)


def _value(kind: int, payload: bytes) -> ctypes.Array[ctypes.c_char]:
    slot = ctypes.create_string_buffer(cv.VAL_SIZE)
    slot[0] = kind
    slot[8 : 8 + len(payload)] = payload
    return slot


@pytest.mark.parametrize(
    ("reader", "kind", "expected"),
    [
        (cv.read_string, cv.U64, "expected string, found u64"),
        (cv.read_bytes, cv.STRING, "expected list, found string"),
        (cv.read_strings, cv.OPTION, "expected list, found option"),
        (cv.read_option_string, cv.S64, "expected option, found s64"),
        (cv.read_s64, cv.U64, "expected s64, found u64"),
        (cv.read_string_pairs, cv.RECORD, "expected list, found record"),
    ],
)
def test_every_reader_checks_the_kind_it_reads(reader: object, kind: int, expected: str) -> None:
    # A u64 of 0xdead... read as a string's (size, pointer) would be a wild read.
    slot = _value(kind, struct.pack("<QQ", 2**40, 0xDEAD_BEEF_0000))
    with pytest.raises(cv.CodecError, match=expected):
        reader(ctypes.addressof(slot))  # type: ignore[operator]


def test_list_elements_are_checked_too() -> None:
    # A list<u64> read as list<u8>: the first element's kind gives it away.
    element = _value(cv.U64, struct.pack("<Q", 7))
    listed = _value(cv.LIST, struct.pack("<QQ", 1, ctypes.addressof(element)))
    with pytest.raises(cv.CodecError, match="expected u8, found u64"):
        cv.read_bytes(ctypes.addressof(listed))
    with pytest.raises(cv.CodecError, match="expected string, found u64"):
        cv.read_strings(ctypes.addressof(listed))
