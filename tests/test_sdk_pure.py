"""Tests of the guest SDK that run on plain CPython, without building a component.

- `wasikv_sdk`, `wasikv_sdk.errors` and `wasikv_sdk.protocol` are pure Python.
- `wasikv_sdk.key_value` is guest-only, but its logic is tested here against
  fake bindings: a fake `componentize_py_types` makes the checked-in binding
  stubs importable, and the stub functions are replaced by an in-memory fake
  host that mimics the generated code's handle ownership rules (a handle
  passed to `swap` is moved; dropping it afterwards fails like the real
  `__exit__` does).
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import pytest

import wasikv_sdk
from wasikv_sdk import errors, protocol

SDK_DIR = Path(wasikv_sdk.__file__).parent

# -- the pure-Python package ------------------------------------------------------------------------


def test_import_does_not_load_bindings() -> None:
    code = (
        "import sys, wasikv_sdk, wasikv_sdk.errors, wasikv_sdk.protocol\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('wasikv_sdk.wit', 'wasikv_sdk.key_value',"
        " 'componentize_py')))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_error_hierarchy() -> None:
    assert issubclass(errors.KeyValueError, Exception)
    subclasses = (errors.NoSuchStore, errors.AccessDenied, errors.StoreError, errors.CasConflict)
    for cls in subclasses:
        assert issubclass(cls, errors.KeyValueError)
    for a in subclasses:
        for b in subclasses:
            assert a is b or not issubclass(a, b)
    with pytest.raises(errors.KeyValueError, match="boom"):
        raise errors.StoreError("boom")
    # Variables are not key-value data: their errors are a family of their own.
    assert issubclass(errors.NoSuchVariable, errors.VariableError)
    assert not issubclass(errors.VariableError, errors.KeyValueError)


def test_reexports() -> None:
    assert set(wasikv_sdk.__all__) == {
        "AccessDenied",
        "BucketProtocol",
        "Cache",
        "CacheComputeError",
        "CacheWaitTimeout",
        "CasConflict",
        "CasHandle",
        "CoordinationError",
        "CorruptRecord",
        "Counter",
        "KeyValueError",
        "Lock",
        "LockError",
        "LockExists",
        "LockTimeout",
        "NoSuchStore",
        "NoSuchVariable",
        "NotLockOwner",
        "ResourceLockedError",
        "StateDictionary",
        "StoreError",
        "VariableError",
        "all_counters",
    }
    for name in wasikv_sdk.__all__:
        assert hasattr(wasikv_sdk, name)
    assert wasikv_sdk.StoreError is errors.StoreError
    assert wasikv_sdk.BucketProtocol is protocol.BucketProtocol
    assert wasikv_sdk.__doc__ and "wasikv_sdk.key_value" in wasikv_sdk.__doc__


def test_package_data_present() -> None:
    assert (SDK_DIR / "py.typed").is_file()
    assert 'bindings = "wit"' in (SDK_DIR / "componentize-py.toml").read_text()


PROTOCOL_METHODS = {
    "get",
    "set",
    "delete",
    "exists",
    "keys",
    "get_many",
    "set_many",
    "delete_many",
    "increment",
    "cas",
    "update",
}


def test_bucket_protocol_members() -> None:
    members = {name for name in vars(protocol.BucketProtocol) if not name.startswith("_")}
    assert members == PROTOCOL_METHODS


class _DictCas:
    def __init__(self, data: dict[str, bytes], key: str) -> None:
        self._data, self._key = data, key
        self._current = data.get(key)

    @property
    def current(self) -> bytes | None:
        return self._current

    def swap(self, value: bytes) -> None:
        if self._data.get(self._key) != self._current:
            raise errors.CasConflict(self._key)
        self._data[self._key] = value

    def __enter__(self) -> _DictCas:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class _DictBucket:
    """A minimal host-side implementation, to check the protocol is implementable."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def set(self, key: str, value: bytes) -> None:
        self.data[key] = value

    def delete(self, key: str) -> None:
        self.data.pop(key, None)

    def exists(self, key: str) -> bool:
        return key in self.data

    def keys(self, prefix: str | None = None) -> Iterator[str]:
        return iter(sorted(k for k in self.data if prefix is None or k.startswith(prefix)))

    def get_many(self, keys: Any) -> dict[str, bytes | None]:
        return {k: self.data.get(k) for k in keys}

    def set_many(self, items: Any) -> None:
        self.data.update(dict(items))

    def delete_many(self, keys: Any) -> None:
        for k in keys:
            self.data.pop(k, None)

    def increment(self, key: str, delta: int = 1) -> int:
        value = int(self.data.get(key, b"0")) + delta
        self.data[key] = str(value).encode()
        return value

    def cas(self, key: str) -> _DictCas:
        return _DictCas(self.data, key)

    def update(self, key: str, fn: Callable[[bytes | None], bytes], *, max_attempts: int = 100) -> bytes:
        value = fn(self.data.get(key))
        self.data[key] = value
        return value


def test_protocols_are_runtime_checkable() -> None:
    bucket = _DictBucket()
    assert isinstance(bucket, protocol.BucketProtocol)
    assert not isinstance(object(), protocol.BucketProtocol)
    with bucket.cas("k") as cas:
        assert isinstance(cas, protocol.CasHandle)
        cas.swap(b"v")
    assert bucket.get("k") == b"v"


def test_errors_are_translated_in_one_function() -> None:
    """Only `_translate` in key_value.py looks at the WIT `store.Error_*` cases."""
    tree = ast.parse((SDK_DIR / "key_value.py").read_text())
    owners: set[str] = set()
    for func in ast.walk(tree):
        if isinstance(func, ast.FunctionDef):
            for node in ast.walk(func):
                if isinstance(node, ast.Attribute) and node.attr.startswith("Error_"):
                    owners.add(func.name)
    assert owners == {"_translate"}


# -- key_value against fake bindings ----------------------------------------------------------------

E = TypeVar("E")


def _fake_types_module() -> types.ModuleType:
    module = types.ModuleType("componentize_py_types")

    @dataclass(frozen=True)
    class Err(Generic[E], Exception):
        value: E

    @dataclass
    class Ok(Generic[E]):
        value: E

    @dataclass
    class Some(Generic[E]):
        value: E

    module.Err = Err  # type: ignore[attr-defined]
    module.Ok = Ok  # type: ignore[attr-defined]
    module.Some = Some  # type: ignore[attr-defined]
    module.Result = Any  # type: ignore[attr-defined]
    return module


class FakeFinalizer:
    """Like `weakref.finalize` as the generated resource classes use it."""

    def __init__(self, on_drop: Callable[[], None]) -> None:
        self._on_drop: Callable[[], None] | None = on_drop

    @property
    def alive(self) -> bool:
        return self._on_drop is not None

    def detach(self) -> tuple[Any, Callable[..., None], tuple[int, int], Any] | None:
        on_drop, self._on_drop = self._on_drop, None
        if on_drop is None:
            return None
        return (None, lambda _index, _handle: on_drop(), (0, 0), None)


class FakeResource:
    def __init__(self, host: FakeHost, kind: str) -> None:
        self.host, self.kind = host, kind
        host.open[kind] += 1
        self.finalizer = FakeFinalizer(self._dropped)

    def _dropped(self) -> None:
        self.host.open[self.kind] -= 1

    def __enter__(self) -> FakeResource:
        return self

    def __exit__(self, *exc: object) -> None:
        # The generated code: fails (TypeError) on a handle already dropped or moved.
        (_, func, args, _) = self.finalizer.detach()  # type: ignore[misc]
        func(args[0], args[1])


class FakeHost:
    def __init__(self, fakes: Fakes, page_size: int = 2, max_open_cas: int = 4) -> None:
        self.f = fakes
        self.data: dict[str, bytes] = {}
        self.versions: dict[str, int] = {}
        self.clock = 0
        self.page_size = page_size
        self.max_open_cas = max_open_cas
        self.open = {"bucket": 0, "cas": 0}
        self.calls: dict[str, int] = {}

    def count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def other(self, msg: str) -> Exception:
        return self.f.Err(self.f.store.Error_Other(msg))  # type: ignore[no-any-return]

    def write(self, key: str, value: bytes | None) -> None:
        self.clock += 1
        self.versions[key] = self.clock
        if value is None:
            self.data.pop(key, None)
        else:
            self.data[key] = value


class FakeBucket(FakeResource):
    def __init__(self, host: FakeHost) -> None:
        super().__init__(host, "bucket")

    def get(self, key: str) -> bytes | None:
        return self.host.data.get(key)

    def set(self, key: str, value: bytes) -> None:
        assert isinstance(value, bytes)
        self.host.write(key, value)

    def delete(self, key: str) -> None:
        self.host.write(key, None)

    def exists(self, key: str) -> bool:
        return key in self.host.data

    def list_keys(self, cursor: str | None) -> Any:
        self.host.count("list_keys")
        if cursor is not None and not cursor.startswith("after:"):
            raise self.host.other("malformed cursor")
        keys = sorted(self.host.data)
        if cursor is not None:
            keys = [k for k in keys if k > cursor[len("after:") :]]
        page = keys[: self.host.page_size]
        more = len(keys) > len(page)
        return self.host.f.store.KeyResponse(page, f"after:{page[-1]}" if more else None)


class FakeCas(FakeResource):
    def __init__(self, host: FakeHost, key: str) -> None:
        if host.open["cas"] >= host.max_open_cas:
            raise host.other("open cas handle limit")
        super().__init__(host, "cas")
        self.key = key
        self.value = host.data.get(key)
        self.version = host.versions.get(key, 0)

    def current(self) -> bytes | None:
        return self.value


@dataclass
class Fakes:
    Err: Any
    store: Any
    atomics: Any
    batch: Any
    key_value: Any
    host: FakeHost = None  # type: ignore[assignment]


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Iterator[Fakes]:
    before = set(sys.modules)
    had = {name: name in vars(wasikv_sdk) for name in ("wit", "key_value")}
    types_module = _fake_types_module()
    monkeypatch.setitem(sys.modules, "componentize_py_types", types_module)
    store = importlib.import_module("wasikv_sdk.wit.imports.wasi_keyvalue_store")
    atomics = importlib.import_module("wasikv_sdk.wit.imports.atomics")
    batch = importlib.import_module("wasikv_sdk.wit.imports.batch")
    key_value = importlib.import_module("wasikv_sdk.key_value")
    f = Fakes(types_module.Err, store, atomics, batch, key_value)  # type: ignore[attr-defined]
    host = FakeHost(f)
    f.host = host
    Err = f.Err

    def open_(label: str) -> FakeBucket:
        if label == "nope":
            raise Err(store.Error_NoSuchStore())
        if label == "secret":
            raise Err(store.Error_AccessDenied())
        return FakeBucket(host)

    def new(bucket: FakeBucket, key: str) -> FakeCas:
        host.count("cas_new")
        return FakeCas(host, key)

    def swap(cas: FakeCas, value: bytes) -> None:
        assert cas.finalizer.alive, "swap on a dropped or moved handle"
        cas.finalizer.detach()  # moved into the host, which drops it
        host.open["cas"] -= 1
        if host.versions.get(cas.key, 0) != cas.version:
            raise Err(atomics.CasError_CasFailed(FakeCas(host, cas.key)))
        host.write(cas.key, value)

    def increment(bucket: FakeBucket, key: str, delta: int) -> int:
        raw = host.data.get(key, b"0")
        if not raw.lstrip(b"-").isdigit():
            raise host.other("not a decimal integer")
        value = int(raw) + delta
        host.write(key, str(value).encode())
        return value

    def get_many(bucket: FakeBucket, keys: list[str]) -> list[tuple[str, bytes | None]]:
        assert isinstance(keys, list)
        return [(k, host.data.get(k)) for k in keys]

    def set_many(bucket: FakeBucket, pairs: list[tuple[str, bytes]]) -> None:
        assert isinstance(pairs, list)
        for k, v in pairs:
            assert isinstance(v, bytes)
            host.write(k, v)

    def delete_many(bucket: FakeBucket, keys: list[str]) -> None:
        assert isinstance(keys, list)
        for k in keys:
            host.write(k, None)

    monkeypatch.setattr(store, "open", open_)
    monkeypatch.setattr(atomics.Cas, "new", staticmethod(new))
    monkeypatch.setattr(atomics, "swap", swap)
    monkeypatch.setattr(atomics, "increment", increment)
    monkeypatch.setattr(batch, "get_many", get_many)
    monkeypatch.setattr(batch, "set_many", set_many)
    monkeypatch.setattr(batch, "delete_many", delete_many)
    yield f
    monkeypatch.undo()
    for name in set(sys.modules) - before:
        if name.startswith(("wasikv_sdk.wit", "wasikv_sdk.key_value")):
            del sys.modules[name]
    for name, present in had.items():
        if not present and name in vars(wasikv_sdk):
            delattr(wasikv_sdk, name)


def test_open_errors(fakes: Fakes) -> None:
    kv = fakes.key_value
    with pytest.raises(errors.NoSuchStore, match="nope"):
        kv.open("nope")
    with pytest.raises(errors.AccessDenied, match="secret"):
        kv.open("secret")
    assert fakes.host.open["bucket"] == 0


def test_single_key_operations_and_close(fakes: Fakes) -> None:
    kv = fakes.key_value
    with kv.open_default() as b:
        assert isinstance(b, protocol.BucketProtocol)
        assert b.label == "default"
        assert b.get("k") is None
        b.set("k", b"v")
        b.set("ba", bytearray(b"x"))
        assert b.get("k") == b"v"
        assert b.get("ba") == b"x"
        assert b.exists("k")
        b.delete("k")
        b.delete("k")
        assert not b.exists("k")
        with pytest.raises(TypeError):
            b.set("k", "text")
        with pytest.raises(TypeError):
            b.get(1)
        assert fakes.host.open["bucket"] == 1
    assert fakes.host.open["bucket"] == 0
    assert b.closed
    b.close()  # idempotent
    with pytest.raises(errors.StoreError, match="closed"):
        b.get("k")


def test_keys_walks_pages_and_stops_after_prefix(fakes: Fakes) -> None:
    kv = fakes.key_value
    with kv.open_default() as b:
        for key in ["c/1", "a/2", "b/1", "a/1", "b/2", "a/3", "d", "e", "f"]:
            b.set(key, b"")
        assert list(b.keys()) == ["a/1", "a/2", "a/3", "b/1", "b/2", "c/1", "d", "e", "f"]
        assert fakes.host.calls["list_keys"] == 5
        fakes.host.calls.clear()
        assert list(b.keys("a/")) == ["a/1", "a/2", "a/3"]
        assert fakes.host.calls["list_keys"] == 2  # stopped at "b/1" on the second page
        assert list(b.keys("b/")) == ["b/1", "b/2"]
        assert list(b.keys("zz")) == []
        assert list(b.keys("")) == list(b.keys())
        page, cursor = b.list_page()
        assert page == ["a/1", "a/2"] and cursor is not None
        with pytest.raises(errors.StoreError, match="malformed cursor"):
            b.list_page("garbage!")


def test_batches(fakes: Fakes) -> None:
    kv = fakes.key_value
    with kv.open_default() as b:
        b.set_many({"k1": b"1", "k2": b"2"})
        b.set_many([("k3", b"3")])
        b.set_many(iter([("k4", bytearray(b"4"))]))
        got = b.get_many(["k1", "missing", "k3", "k1"])
        assert got == {"k1": b"1", "missing": None, "k3": b"3"}
        assert list(got) == ["k1", "missing", "k3"]
        b.delete_many(k for k in ("k1", "missing"))
        assert b.get_many(["k1", "k2", "k4"]) == {"k1": None, "k2": b"2", "k4": b"4"}


def test_increment(fakes: Fakes) -> None:
    kv = fakes.key_value
    with kv.open_default() as b:
        assert b.increment("n") == 1
        assert b.increment("n", -5) == -4
        b.set("bad", b"abc")
        with pytest.raises(errors.StoreError, match="not a decimal integer"):
            b.increment("bad")
        with pytest.raises(ValueError):
            b.increment("n", 2**63)


def test_cas_success_conflict_and_release(fakes: Fakes) -> None:
    kv, host = fakes.key_value, fakes.host
    with kv.open_default() as b:
        with b.cas("k") as cas:
            assert isinstance(cas, protocol.CasHandle)
            assert cas.current is None
            cas.swap(b"1")
            assert cas.closed
        assert b.get("k") == b"1"
        assert host.open["cas"] == 0

        with b.cas("k") as cas:
            assert cas.current == b"1"
            b.set("k", b"1")  # same bytes, new version
            with pytest.raises(errors.CasConflict):
                cas.swap(b"2")
            assert host.open["cas"] == 0  # the fresh handle from cas-failed was dropped
            with pytest.raises(errors.StoreError, match="already used"):
                cas.swap(b"3")
        assert b.get("k") == b"1"

        with b.cas("unused") as cas:
            assert host.open["cas"] == 1
        assert host.open["cas"] == 0
        assert cas.closed


def test_cas_handle_limit_is_a_store_error(fakes: Fakes) -> None:
    kv = fakes.key_value
    with kv.open_default() as b:
        handles = [b.cas(f"k{i}") for i in range(4)]
        with pytest.raises(errors.StoreError, match="limit"):
            b.cas("one-more")
        for handle in handles:
            handle.close()
        b.cas("again").close()
        assert fakes.host.open["cas"] == 0


def test_update_reuses_the_fresh_handle(fakes: Fakes) -> None:
    kv, host = fakes.key_value, fakes.host
    with kv.open_default() as b:
        assert b.update("u", lambda cur: (cur or b"") + b"x") == b"x"
        assert b.update("u", lambda cur: (cur or b"") + b"x") == b"xx"

        seen: list[bytes | None] = []

        def conflict_twice(current: bytes | None) -> bytes:
            seen.append(current)
            if len(seen) <= 2:
                b.set("v", str(len(seen)).encode())
            return b"mine"

        host.calls.clear()
        assert b.update("v", conflict_twice) == b"mine"
        assert seen == [None, b"1", b"2"]
        assert host.calls["cas_new"] == 1  # retries used the handles from cas-failed
        assert b.get("v") == b"mine"
        assert host.open["cas"] == 0


def test_update_gives_up_and_releases(fakes: Fakes) -> None:
    kv, host = fakes.key_value, fakes.host
    with kv.open_default() as b:
        calls = 0

        def meddle(current: bytes | None) -> bytes:
            nonlocal calls
            calls += 1
            b.set("w", str(calls).encode())
            return b"never"

        with pytest.raises(errors.CasConflict):
            b.update("w", meddle, max_attempts=3)
        assert calls == 3
        assert b.get("w") == b"3"
        assert host.open["cas"] == 0

        def boom(current: bytes | None) -> bytes:
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            b.update("x", boom)
        assert host.open["cas"] == 0
        assert not b.exists("x")

        with pytest.raises(ValueError):
            b.update("x", lambda cur: b"", max_attempts=0)


def test_translate_covers_every_wit_error(fakes: Fakes) -> None:
    kv, store, atomics = fakes.key_value, fakes.store, fakes.atomics
    assert isinstance(kv._translate(store.Error_NoSuchStore(), "l"), errors.NoSuchStore)
    assert isinstance(kv._translate(store.Error_AccessDenied(), "l"), errors.AccessDenied)
    other = kv._translate(store.Error_Other("why"), "l")
    assert type(other) is errors.StoreError and str(other) == "why"
    nested = kv._translate(atomics.CasError_StoreError(store.Error_Other("deep")), "l")
    assert type(nested) is errors.StoreError and str(nested) == "deep"
    fresh = FakeCas(fakes.host, "k")
    assert isinstance(kv._translate(atomics.CasError_CasFailed(fresh), "l"), errors.CasConflict)
    assert not fresh.finalizer.alive
    assert fakes.host.open["cas"] == 0
    assert type(kv._translate(object(), "l")) is errors.StoreError


def test_response_bodies_of_text_and_bytes() -> None:
    from wasikv_sdk.http import TEXT_CONTENT_TYPE, Response

    text = Response(200, {}, "héllo")
    assert text.body == "héllo".encode() and text.header_pairs() == [("content-type", TEXT_CONTENT_TYPE)]
    # A content type the app chose is kept.
    html = Response(200, {"Content-Type": "text/html"}, "<p>hi</p>")
    assert html.header_pairs() == [("content-type", "text/html")] and html.body == b"<p>hi</p>"
    assert Response(200, [], bytearray(b"ab")).body == b"ab"
    assert Response(200, [], memoryview(b"cd")).body == b"cd"
    with pytest.raises(TypeError, match="Response body must be bytes or str, not dict"):
        Response(200, {}, {"a": 1})  # type: ignore[arg-type]


def test_streaming_response_chunks_are_bytes_or_text() -> None:
    from wasikv_sdk.http import StreamingResponse

    made = StreamingResponse(200, {"X-A": "1"}, iter(["é", b"b", bytearray(b"c"), memoryview(b"d")]))
    assert made.header_pairs() == [("x-a", "1")]
    assert list(made.encoded_chunks()) == ["é".encode(), b"b", b"c", b"d"]
    # A bad chunk is told when it comes, by its type: those before it were sent already.
    bad = StreamingResponse(200, [], [b"ok", 3])  # type: ignore[list-item]
    chunks = bad.encoded_chunks()
    assert next(chunks) == b"ok"
    with pytest.raises(TypeError, match="StreamingResponse chunks must be bytes or str, not int"):
        next(chunks)


@pytest.mark.parametrize("app", [object, 3, "App"])
def test_incoming_handler_takes_a_handler_class(app: object) -> None:
    from wasikv_sdk import http

    with pytest.raises(TypeError, match=r"incoming_handler takes a subclass of http\.Handler, not"):
        http.incoming_handler(app)  # type: ignore[arg-type]
