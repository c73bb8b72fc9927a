"""The baseline: a straightforward wasi:keyvalue host on wasmtime-py's generic conversion.

This is what a host written with `LinkerInstance.add_func` and Python values
looks like. It exists only so `make bench` can show, in the same run, what
wasikv's own value conversion buys. Known limits of the generic path: it
cannot return `err` from functions whose `ok` is an `option`, and it moves
`list<u8>` one element at a time.
"""

from __future__ import annotations

import itertools
from typing import Any

from wasmtime import Engine, Store, WasiConfig
from wasmtime.component import Component, Linker, Record, ResourceAny, ResourceHost, ResourceType

from wasikv.stores.base import Store as KeyValueStore

BUCKET, CAS = 1, 2


class GenericHost:
    """Runs command components with every key-value call converted generically."""

    def __init__(self, engine: Engine, store: KeyValueStore) -> None:
        self.engine = engine
        self.kv = store
        self.linker = Linker(engine)
        self.linker.add_wasip2()
        # SDK guests import these too (wasikv's platform world): linked, never called here.
        self.linker.add_wasi_http()
        self.cas: dict[int, tuple[str, Any]] = {}
        self._reps = itertools.count(1)
        self._define()

    def _rep(self, store: Any, handle: ResourceAny) -> int:
        return handle.to_host(store).rep

    def _define(self) -> None:
        kv = self.kv
        with self.linker.root() as root:
            with root.add_instance("wasi:keyvalue/store@0.2.0-draft2") as inst:
                inst.add_resource("bucket", ResourceType.host(BUCKET), lambda _s, _r: None)

                def open_(store: Any, label: str) -> Any:
                    return ResourceHost.own(0, BUCKET)

                def get(store: Any, this: ResourceAny, key: str) -> Any:
                    self._rep(store, this)
                    return kv.get(key)

                def set_(store: Any, this: ResourceAny, key: str, value: bytes) -> None:
                    self._rep(store, this)
                    kv.set(key, value)

                def delete(store: Any, this: ResourceAny, key: str) -> None:
                    self._rep(store, this)
                    kv.delete(key)

                def exists(store: Any, this: ResourceAny, key: str) -> bool:
                    self._rep(store, this)
                    return kv.exists(key)

                def list_keys(store: Any, this: ResourceAny, cursor: str | None) -> Any:
                    self._rep(store, this)
                    return Record(keys=kv.list_keys(None, 1000), cursor=None)

                inst.add_func("open", open_)
                inst.add_func("[method]bucket.list-keys", list_keys)
                inst.add_func("[method]bucket.get", get)
                inst.add_func("[method]bucket.set", set_)
                inst.add_func("[method]bucket.delete", delete)
                inst.add_func("[method]bucket.exists", exists)
            with root.add_instance("wasi:keyvalue/atomics@0.2.0-draft2") as inst:
                inst.add_resource("cas", ResourceType.host(CAS), lambda _s, rep: self.cas.pop(rep, None))

                def cas_new(store: Any, bucket: ResourceAny, key: str) -> Any:
                    self._rep(store, bucket)
                    rep = next(self._reps)
                    self.cas[rep] = (key, kv.get_versioned(key))
                    return ResourceHost.own(rep, CAS)

                def cas_current(store: Any, this: ResourceAny) -> Any:
                    return self.cas[self._rep(store, this)][1].value

                def increment(store: Any, bucket: ResourceAny, key: str, delta: int) -> int:
                    self._rep(store, bucket)
                    return kv.increment(key, delta)

                def swap(store: Any, cas: ResourceAny, value: bytes) -> None:
                    key, pinned = self.cas.pop(self._rep(store, cas))
                    kv.swap(key, pinned.version, value)

                inst.add_func("[static]cas.new", cas_new)
                inst.add_func("[method]cas.current", cas_current)
                inst.add_func("increment", increment)
                inst.add_func("swap", swap)
            with root.add_instance("wasi:config/store@0.2.0-draft-2024-09-27") as inst:
                inst.add_func("get", lambda _store, _key: None)
                inst.add_func("get-all", lambda _store: [])
            with root.add_instance("wasi:keyvalue/batch@0.2.0-draft2") as inst:

                def get_many(store: Any, bucket: ResourceAny, keys: list[str]) -> Any:
                    self._rep(store, bucket)
                    return list(zip(keys, kv.get_many(keys), strict=True))

                def set_many(store: Any, bucket: ResourceAny, pairs: list[tuple[str, bytes]]) -> None:
                    self._rep(store, bucket)
                    kv.set_many(pairs)

                def delete_many(store: Any, bucket: ResourceAny, keys: list[str]) -> None:
                    self._rep(store, bucket)
                    kv.delete_many(keys)

                inst.add_func("get-many", get_many)
                inst.add_func("set-many", set_many)
                inst.add_func("delete-many", delete_many)

    def run(self, component: Component, argv: list[str], stdout: Any) -> None:
        """Run a command component once."""
        store = Store(self.engine)
        wasi = WasiConfig()
        wasi.argv = argv
        wasi.stdout_custom = stdout
        wasi.inherit_stderr()
        store.set_wasi(wasi)
        store.set_wasi_http()
        instance = self.linker.instantiate(store, component)
        index = instance.get_export_index(store, "wasi:cli/run@0.2.0")
        assert index is not None
        run_index = instance.get_export_index(store, "run", index)
        assert run_index is not None
        func = instance.get_func(store, run_index)
        assert func is not None
        func(store)
