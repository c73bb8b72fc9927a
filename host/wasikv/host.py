"""The embeddable host: stores by label, compiled components, running them."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from wasmtime import Config, Engine, ExitTrap, Store, WasiConfig, WasmtimeError
from wasmtime.component import Component, Func, Instance, Linker

from ._capi import context_address
from .bucket import Bucket
from .compile_cache import CompileCache, default_cache_dir
from .errors import AccessDenied, ComponentError, ConfigError, NoSuchStore
from .instance_pool import InstancePool
from .keyvalue import KeyValueSession, add_to_linker
from .limits import Limits
from .stores import open_store
from .stores.base import Store as KeyValueStore

log = logging.getLogger("wasikv")

#: The store behind the label `default` when none is configured.
DEFAULT_STORE_URL = "sqlite:.wasikv/default.db"

_RUN_INTERFACE = "wasi:cli/run@0.2."


class GuestTrap(ComponentError):
    """The component trapped (a wasm trap or a failed host call)."""


class Host:
    """Runs wasi:keyvalue components against stores configured by label.

    `stores` maps labels to store URLs (`memory:`, `sqlite:PATH`) or to
    `Store` objects; without it, `default` is `sqlite:.wasikv/default.db`.
    Labels with the same URL share one store object, so `memory:` data is
    shared by every component this host runs. A `Host` may be used from
    several threads at once: each `run` gets its own wasmtime store.
    `instance_pool` switches wasmtime to its pooling allocator, which makes
    fresh instances cheaper for servers (see `InstancePool`).
    """

    def __init__(
        self,
        stores: Mapping[str, str | KeyValueStore] | None = None,
        *,
        limits: Limits | None = None,
        cache_dir: str | Path | None = None,
        compile_cache: bool = True,
        instance_pool: InstancePool | None = None,
    ) -> None:
        self.limits = limits or Limits()
        config = Config()
        settings = "default-config"
        if instance_pool is not None:
            instance_pool.apply(config)
            settings += ";" + instance_pool.describe()
        self.engine = Engine(config)
        directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._cache = CompileCache(self.engine, directory if compile_cache else None, settings)
        self._sessions: dict[int, KeyValueSession] = {}
        self._linker = Linker(self.engine)
        self._linker.add_wasip2()
        add_to_linker(self._linker, self._sessions)
        self._stores_by_url: dict[str, KeyValueStore] = {}
        self._labels: dict[str, KeyValueStore] = {}
        for label, store in (stores if stores is not None else {"default": DEFAULT_STORE_URL}).items():
            self.add_store(label, store)

    # ------------------------------------------------------------ stores

    def add_store(self, label: str, store: str | KeyValueStore) -> KeyValueStore:
        """Define `label` as a store URL or object; returns the store."""
        if not label:
            raise ConfigError("a store label must not be empty")
        if label in self._labels:
            raise ConfigError(f"store label {label!r} is defined twice")
        if isinstance(store, str):
            # Redis keeps each label under its own key prefix, so one Redis URL
            # serves several labels; other URLs are one store whatever the label.
            cache_key = f"{label}\0{store}" if store.lower().startswith(("redis:", "rediss:")) else store
            opened = self._stores_by_url.get(cache_key)
            if opened is None:
                opened = open_store(store, label=label)
                self._stores_by_url[cache_key] = opened
            store = opened
        self._labels[label] = store
        return store

    @property
    def labels(self) -> list[str]:
        """The defined store labels."""
        return sorted(self._labels)

    def bucket(self, label: str = "default") -> Bucket:
        """Host-side access to the store behind `label` (as guests see it)."""
        return Bucket(label, self._resolve(label, None), self.limits)

    def _resolve(self, label: str, grants: frozenset[str] | None) -> KeyValueStore:
        store = self._labels.get(label)
        if store is None:
            raise NoSuchStore(f"no store is defined under the label {label!r}")
        if grants is not None and label not in grants:
            raise AccessDenied(f"this component is not granted the store {label!r}")
        return store

    # -------------------------------------------------------- components

    def load(self, source: str | Path | bytes) -> Component:
        """Compile (or fetch from the compile cache) a component."""
        if isinstance(source, bytes):
            return self._cache.load(source, "component")
        path = Path(source)
        try:
            wasm = path.read_bytes()
        except OSError as exc:
            raise ComponentError(f"{path}: cannot read component: {exc.strerror or exc}") from None
        return self._cache.load(wasm, str(path))

    def run(
        self,
        source: str | Path | bytes | Component,
        args: Iterable[str] = (),
        *,
        env: Mapping[str, str] | None = None,
        grants: Iterable[str] | None = None,
        stdout: BinaryIO | None = None,
        stderr: BinaryIO | None = None,
        program_name: str | None = None,
    ) -> int:
        """Run a `wasi:cli/run` component and return its exit code.

        argv is `[program_name, *args]` (the component's path by default, as
        `wasmtime run` does). The guest sees only the `env` given here, no
        filesystem and no network. `grants` limits the labels it may open
        (all labels when None). Output goes to `stdout`/`stderr` when given,
        else to this process's. Raises `GuestTrap` if the component traps.
        """
        component = source if isinstance(source, Component) else self.load(source)
        if program_name is None:
            program_name = str(source) if isinstance(source, (str, Path)) else "app.wasm"
        with self.instantiate(
            component, argv=[program_name, *args], env=env, grants=grants, stdout=stdout, stderr=stderr
        ) as (store, instance):
            run = _find_run(instance, store)
            try:
                outcome = run(store)
            except ExitTrap as exit_:
                return exit_.code
            except WasmtimeError as exc:
                raise GuestTrap(f"component trapped: {exc}") from None
            # `result` without payloads lifts as a tagged Variant.
            return 0 if getattr(outcome, "tag", None) == "ok" else 1

    @contextmanager
    def instantiate(
        self,
        component: Component,
        *,
        argv: Sequence[str] = ("app.wasm",),
        env: Mapping[str, str] | None = None,
        grants: Iterable[str] | None = None,
        stdout: BinaryIO | None = None,
        stderr: BinaryIO | None = None,
    ) -> Iterator[tuple[Store, Instance]]:
        """A fresh instance of `component` in its own wasmtime store.

        For triggers that call exports other than `wasi:cli/run`. The
        instance's key-value handles are released when the block ends.
        """
        store = Store(self.engine)
        wasi = WasiConfig()
        wasi.argv = list(argv)
        wasi.env = list((env or {}).items())
        _route_output(wasi, stdout, stderr)
        store.set_wasi(wasi)
        granted = None if grants is None else frozenset(grants)
        undefined = sorted((granted or frozenset()) - self._labels.keys())
        if undefined:
            raise ConfigError(
                f"granted store label(s) {', '.join(map(repr, undefined))} not defined; "
                f"defined: {', '.join(map(repr, self.labels)) or 'none'}"
            )
        ctx = context_address(store)
        self._sessions[ctx] = KeyValueSession(lambda label: self._resolve(label, granted), self.limits)
        try:
            yield store, self._instantiate(store, component)
        finally:
            self._sessions.pop(ctx).close()

    def session(self, store: Store) -> KeyValueSession:
        """The key-value handle table of an instance made by `instantiate` (for triggers)."""
        return self._sessions[context_address(store)]

    def _instantiate(self, store: Store, component: Component) -> Instance:
        try:
            return self._linker.instantiate(store, component)
        except WasmtimeError as exc:
            raise ComponentError(f"cannot instantiate component: {exc}") from None

    # ------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close every store this host opened from a URL."""
        for store in self._stores_by_url.values():
            store.close()
        self._stores_by_url.clear()

    def __enter__(self) -> Host:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _find_run(instance: Instance, store: Store) -> Func:
    # Components built by other toolchains export other 0.2.x patch versions.
    for patch in range(0, 100):
        index = instance.get_export_index(store, f"{_RUN_INTERFACE}{patch}")
        if index is None:
            continue
        func = instance.get_func(store, instance.get_export_index(store, "run", index) or index)
        if func is not None:
            return func
    raise ComponentError("the component does not export wasi:cli/run@0.2.x (is it a command component?)")


def _route_output(wasi: WasiConfig, stdout: BinaryIO | None, stderr: BinaryIO | None) -> None:
    if stdout is None:
        wasi.inherit_stdout()
    else:
        wasi.stdout_custom = _writer(stdout)
    if stderr is None:
        wasi.inherit_stderr()
    else:
        wasi.stderr_custom = _writer(stderr)


def _writer(stream: BinaryIO) -> object:
    def write(data: bytes) -> int:
        stream.write(data)
        return len(data)

    return write
