"""The embeddable host: stores by label, compiled components, running them in a sandbox."""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from wasmtime import Config, Engine, ExitTrap, Store, WasmtimeError
from wasmtime.component import Component, Func, Instance, Linker

from .allowed_hosts import AllowedHosts
from .bucket import Bucket
from .capability import Capability, InstanceSpec, OutputStream
from .errors import AccessDenied, ComponentError, ConfigError, GuestTrap, NoSuchStore, StoreError
from .interfaces.config import Variables
from .interfaces.keyvalue import INTERFACES, KeyValueSession
from .interfaces.keyvalue.capability import KeyValue
from .interfaces.outbound_http import OutboundHttp
from .interfaces.spin import KEY_VALUE as SPIN_KEY_VALUE
from .interfaces.unprovided import Unprovided
from .interfaces.wasi.capability import PythonWasi, wasi_plan
from .interfaces.wasi.http_client import HttpClient
from .interfaces.wasi.linking import WasiPlan
from .interfaces.wasi.table import WasiState
from .limits import MAX_COMPONENT_BYTES, Limits
from .live_instance import LiveInstance, abandoned_writers
from .metrics import Metrics, measured
from .runtime import _capi, deadlines
from .runtime._capi import context_address
from .runtime.compile_cache import CompileCache, CompileHook, default_cache_dir
from .runtime.deadlines import Deadline, Shutdown
from .runtime.guest_errors import python_path_of
from .runtime.host_functions import HostInterface
from .runtime.instance_pool import InstancePool
from .runtime.linking import (
    LinkPlan,
    exported_functions,
    imported_functions,
    plan_imports,
)
from .runtime.wit_types import FuncSig
from .safe_files import read_regular_file
from .stores import open_store
from .stores.base import Store as KeyValueStore
from .stores.registry import DEFAULT_STORE_URL, backend_for_url

log = logging.getLogger("wasikv")

_RUN_INTERFACE = "wasi:cli/run@0.2."
# How long past its deadline (or Ctrl-C) a guest blocked in a host call is
# waited for before it is left behind.
_GRACE = 1.0

_T = TypeVar("_T")


class ExitStatus(int):
    """The exit code of a command run (`Host.run`), an `int`.

    `returned_error` tells a guest whose `run` returned its error result
    (exit code 1) from one that exited with a code. componentize-py returns
    it when a `componentize_py_types.Err` escapes `run` (the raw bindings
    raise those), and prints nothing about it.
    """

    returned_error: bool

    def __new__(cls, code: int, *, returned_error: bool = False) -> ExitStatus:
        status = super().__new__(cls, code)
        status.returned_error = returned_error
        return status


class Host:
    """Runs wasi:keyvalue components against stores configured by label.

    `stores` maps labels to store URLs (`memory:`, `sqlite:PATH`) or to
    `Store` objects; without it, `default` is `sqlite:.wasikv/default.db`.
    Labels with the same URL share one store object, so `memory:` data is
    shared by every component this host runs. A `Host` may be used from
    several threads at once: each `run` gets its own wasmtime store.
    `instance_pool` switches wasmtime to its pooling allocator, which makes
    fresh instances cheaper for servers (see `InstancePool`). `on_compile`,
    if given, is called with a component's origin around each compile the
    compile cache could not spare (seconds of work), for showing progress;
    the host itself never prints.

    Components read their variables through `wasi:config/store`: each run
    or instance is given its own (`run(variables=)`), like its environment.

    Every instance is sandboxed: its key-value imports are type-checked
    before it is instantiated, its memory and tables are capped by `limits`,
    it has no network but the outbound HTTP requests a run allows, by
    scheme, host and port (`run(allowed_outbound_hosts=[...])`, Spin's
    syntax), sent by the host's own client; and it can be given a deadline
    (`run(timeout=)`); `interrupt` stops every running guest of the host.
    """

    #: Whether guest code checks for deadlines (only benchmarks turn it off,
    #: to measure what the checks cost).
    _epoch_interruption = True

    def __init__(
        self,
        stores: Mapping[str, str | KeyValueStore] | None = None,
        *,
        limits: Limits | None = None,
        cache_dir: str | Path | None = None,
        compile_cache: bool = True,
        instance_pool: InstancePool | None = None,
        metrics: Metrics | None = None,
        on_compile: CompileHook | None = None,
    ) -> None:
        self.limits = limits or Limits()
        #: Wraps each real compile (see `CompileHook`); None: compile silently.
        self.on_compile = on_compile
        #: Where instantiation times, live instances and store calls are counted (None: nowhere).
        self.metrics = metrics
        config = Config()
        config.epoch_interruption = self._epoch_interruption
        settings = "default-config;epoch" if self._epoch_interruption else "default-config"
        if instance_pool is not None:
            # Not part of the cache key: the pooling allocator changes no
            # compiled code, and wasmtime checks every setting that does when
            # it loads an artifact; `run` and `up` share one compile this way.
            instance_pool.apply(config, self.limits)
        self.engine = Engine(config)
        deadlines.ticker.register(self.engine)
        # Not at close(): guests still stopping after it need the ticks.
        weakref.finalize(self, deadlines.ticker.unregister, self.engine)
        self.shutdown = Shutdown()
        directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._cache = CompileCache(self.engine, directory if compile_cache else None, settings)
        self._key_value = KeyValue(
            (*INTERFACES, *SPIN_KEY_VALUE), self._resolve, lambda: self._labels.keys(), self.limits
        )
        self._http_client: HttpClient | None = None
        self._http_lock = threading.Lock()
        self._python_wasi = PythonWasi(self._outbound_client)
        #: What the host lends every instance, each with its interfaces, linking and per-instance state.
        self.capabilities: tuple[Capability, ...] = (
            self._key_value,
            Variables(),
            OutboundHttp(),
            self._python_wasi,
            Unprovided(lambda: self._provided),
        )
        self._provided: dict[str, list[HostInterface]] = {}
        for capability in self.capabilities:
            for interface in capability.interfaces:
                self._provided.setdefault(interface.name, []).append(interface)
        self._linkers: dict[tuple[object, ...], Linker] = {}
        self._plans: weakref.WeakKeyDictionary[Component, LinkPlan] = weakref.WeakKeyDictionary()
        self._origins: weakref.WeakKeyDictionary[Component, str] = weakref.WeakKeyDictionary()
        # The Python path `wasikv componentize` recorded in each component, for its tracebacks.
        self._python_paths: weakref.WeakKeyDictionary[Component, list[Path]] = weakref.WeakKeyDictionary()
        self._link_lock = threading.Lock()
        self._stores_by_url: dict[str, KeyValueStore] = {}
        self._labels: dict[str, KeyValueStore] = {}
        # The same stores, timed into `metrics` (only with metrics).
        self._measured: dict[str, KeyValueStore] = {}
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
            # Backends that keep each label apart under one URL (Redis key
            # prefixes) open a store per label; other URLs are one store.
            cache_key = f"{label}\0{store}" if backend_for_url(store).per_label else store
            opened = self._stores_by_url.get(cache_key)
            if opened is None:
                opened = open_store(store, label=label)
                self._stores_by_url[cache_key] = opened
            store = opened
        for other_label, other in self._labels.items():
            if other is not store and (why := store.overlaps(other)) is not None:
                raise ConfigError(f"store labels {other_label!r} and {label!r} {why}")
        self._labels[label] = store
        if self.metrics is not None:
            self._measured[label] = measured(store, label, self.metrics)
        return store

    @property
    def labels(self) -> list[str]:
        """The defined store labels."""
        return sorted(self._labels)

    def store(self, label: str) -> KeyValueStore:
        """The store behind `label`, as opened (not timed into metrics); `NoSuchStore` if undefined."""
        store = self._labels.get(label)
        if store is None:
            raise NoSuchStore(f"no store is defined under the label {label!r}")
        return store

    def check_stores(self) -> None:
        """Raise `ConfigError` naming the first label whose store does not answer now."""
        for label in sorted(self._labels):
            store = self._labels[label]
            try:
                store.check()
            except StoreError as exc:
                raise ConfigError(f"store {label!r} cannot be used: {exc}") from None

    def bucket(self, label: str = "default") -> Bucket:
        """Host-side access to the store behind `label` (as guests see it)."""
        return Bucket(label, self._resolve(label, None), self.limits)

    def _resolve(self, label: str, grants: frozenset[str] | None) -> KeyValueStore:
        store = self._measured.get(label) or self._labels.get(label)
        if store is None:
            raise NoSuchStore(f"no store is defined under the label {label!r}")
        if grants is not None and label not in grants:
            raise AccessDenied(f"this component is not granted the store {label!r}")
        return store

    # -------------------------------------------------------- components

    def load(
        self,
        source: str | Path | bytes,
        *,
        check: bool = True,
        python_path: Sequence[str | Path] | None = None,
    ) -> Component:
        """Compile (or fetch from the compile cache) a component, and check its imports.

        Raises `ComponentError` if the file cannot be read, is not a regular
        file of at most `MAX_COMPONENT_BYTES`, is not a component, or (unless
        `check` is False, for inspecting it) imports a wasi:keyvalue interface
        with types other than the ones wasikv implements.

        Its guest tracebacks name the app's files by the Python path
        `wasikv componentize` recorded in it. For a component built by
        componentize-py directly, which names them `/0/app.py`, `/1/...` by
        the order of its `-p` options, `python_path` gives those directories
        in that order (as they are found now).
        """
        if isinstance(python_path, (str, Path)):
            raise ConfigError(
                "python_path must be a list of directories, not the single path"
                f" {str(python_path)!r}; write [{str(python_path)!r}]"
            )
        if isinstance(source, (bytes, bytearray, memoryview)):
            origin, wasm = "component", bytes(source)
        else:
            path = Path(source)
            origin = str(path)
            wasm = read_regular_file(path, MAX_COMPONENT_BYTES, "component", error=ComponentError)
        component = self._cache.load(wasm, origin, self.on_compile)
        if not (isinstance(source, bytes) and component in self._origins):
            # The same bytes loaded from a file before keep the file's name.
            self._origins[component] = origin
        paths = python_path_of(wasm) if python_path is None else [Path(p).resolve() for p in python_path]
        if paths is not None:
            self._python_paths[component] = paths
        if check:
            self._plan(component)
        return component

    @property
    def provided(self) -> Mapping[str, Sequence[HostInterface]]:
        """The interfaces wasikv implements itself, by name (several shapes may share one)."""
        return self._provided

    def imports(self, component: Component) -> dict[str, dict[str, FuncSig]]:
        """The functions a component imports, by interface."""
        return imported_functions(self.engine, component)

    def exports(self, component: Component) -> dict[str, dict[str, FuncSig]]:
        """The functions a component exports, by interface (for checking a trigger's export)."""
        return exported_functions(self.engine, component)

    def origin(self, component: Component) -> str:
        """Where a component was loaded from (for messages)."""
        return self._origins.get(component, "component")

    def _plan(self, component: Component) -> LinkPlan:
        plan = self._plans.get(component)
        if plan is None:
            plan = plan_imports(self.imports(component), self._provided, self.origin(component))
            extras = tuple(
                (capability.name, extra)
                for capability in self.capabilities
                if (extra := capability.prepare(self.engine, component, self.origin(component))) is not None
            )
            if extras:
                plan = replace(plan, extras=extras)
            self._plans[component] = plan
        return plan

    def _outbound_client(self) -> HttpClient:
        """The client every guest's allowed outbound HTTP requests go through (one per host)."""
        with self._http_lock:
            if self._http_client is None:
                self._http_client = HttpClient()
            return self._http_client

    def _linker(self, plan: LinkPlan, spec: InstanceSpec) -> Linker:
        key = (plan, *(capability.link_key(plan, spec) for capability in self.capabilities))
        with self._link_lock:
            linker = self._linkers.get(key)
            if linker is None:
                linker = Linker(self.engine)
                linker.add_wasip2()
                for capability in self.capabilities:
                    capability.link(linker, plan, spec)
                self._linkers[key] = linker
            return linker

    def run(
        self,
        source: str | Path | bytes | Component,
        args: Iterable[str] = (),
        *,
        env: Mapping[str, str] | None = None,
        variables: Mapping[str, str] | None = None,
        grants: Iterable[str] | None = None,
        stdout: OutputStream | None = None,
        stderr: OutputStream | None = None,
        program_name: str | None = None,
        timeout: float | None = None,
        allowed_outbound_hosts: AllowedHosts | Sequence[str] = (),
        outbound_http: bool = False,
    ) -> ExitStatus:
        """Run a `wasi:cli/run` component and return its exit code.

        argv is `[program_name, *args]` (the component's path by default, as
        `wasmtime run` does). The guest sees only the `env` given here, no
        filesystem and no network: its outbound HTTP requests
        (`wasi:http/outgoing-handler`) go only where `allowed_outbound_hosts`
        allows (Spin's `allowed_outbound_hosts` entries, such as
        `"https://api.example.com"` or `"http://127.0.0.1:8000..9000"`, or an
        `AllowedHosts`; `["*://*:*"]` allows every host); any other fails
        with `HTTP-request-denied` before anything is sent; an invalid entry
        is a `ConfigError`. `outbound_http=True` is the older spelling of
        `["*://*:*"]` (deprecated). `variables` are what it reads through
        `wasi:config/store` (key to value, already resolved, as
        `wasikv.app.variable_sources` resolves an app's; none when None).
        `grants` limits the labels it may open (all labels when None).
        Output goes to `stdout`/`stderr` when given, else to this process's.
        Everything the guest writes is passed on: a caller that collects it
        (in a `BytesIO`, say) holds as much as the guest prints, until
        `timeout` stops it; `wasikv.triggers._output.CapturedOutput` keeps
        only the first bytes. Its tracebacks are passed on as `instantiate`
        says. `timeout` (seconds) stops a guest that runs longer with
        `GuestTimeout`. Raises `GuestTrap` if the component traps (naming
        the guest's uncaught Python exception, see `GuestTrap`). The exit
        code is an `ExitStatus`: 1 with `returned_error` when the guest's
        `run` returned its error result rather than exiting.

        Called from the main thread, the guest runs on a helper thread so
        that Ctrl-C still works: `KeyboardInterrupt` stops the guest and is
        raised again here.
        """
        component = source if isinstance(source, Component) else self.load(source)
        if program_name is None:
            program_name = str(source) if isinstance(source, (str, Path)) else "app.wasm"
        spec = InstanceSpec(
            argv=(program_name, *args),
            env=env or {},
            variables=variables or {},
            grants=None if grants is None else frozenset(grants),
            stdout=stdout,
            stderr=stderr,
            timeout=timeout,
            allowed_outbound_hosts=_allowed_hosts(allowed_outbound_hosts, outbound_http),
        )
        with self.instantiate(component, spec) as (store, instance):
            run = _find_run(instance, store)
            deadline = self.deadline(store)
            try:
                outcome = _interruptible(lambda: run(store), deadline)
            except ExitTrap as exit_:
                return ExitStatus(exit_.code)
            except WasmtimeError as exc:
                raise deadline.error(str(exc)) from None
            # `result` without payloads lifts as a tagged Variant.
            if getattr(outcome, "tag", None) == "ok":
                return ExitStatus(0)
            return ExitStatus(1, returned_error=True)

    @contextmanager
    def instantiate(
        self, component: Component, spec: InstanceSpec | None = None
    ) -> Iterator[tuple[Store, Instance]]:
        """A fresh instance of `component` in its own wasmtime store, given `spec`.

        For triggers that call exports other than `wasi:cli/run`. Each
        capability gives the instance its state (its key-value handles, its
        variables, ...), released when the block ends. Its deadline
        (`spec.timeout` seconds from now, None for none) is `deadline(store)`.
        Raises `ConfigError` for a spec the host cannot serve (a granted label
        it does not define).

        The guest's stderr goes to `spec.stderr` (None: this process's) with
        its Python tracebacks told in the app's terms: the file names and
        source lines of its sources, when its component was built by
        `wasikv componentize` (which records them), and without the panic
        text componentize-py adds after an uncaught exception unless the
        `wasikv.guest` logger is enabled for DEBUG. A trap of a call made in
        the block (a wasmtime `Func` called on `store`) is raised as a
        `GuestTrap` naming the guest's uncaught exception, as `run` does.
        """
        live = self.open_instance(component, spec)
        try:
            with live.calls():
                yield live.store, live.instance
        finally:
            live.close()

    def open_instance(
        self, component: Component, spec: InstanceSpec | None = None, *, memory_bytes: int | None = None
    ) -> LiveInstance:
        """A fresh instance of `component`, as `instantiate` makes it, for the caller to `close`.

        For keeping an instance across several uses (`wasikv.reuse`): each
        use is a `with live.calls():` block. `memory_bytes` caps its linear
        memory below the host's `Limits.max_memory_bytes`.
        """
        spec = spec or InstanceSpec()
        plan = self._plan(component)
        python_paths = self._python_paths
        return LiveInstance(
            engine=self.engine,
            linker=self._linker(plan, spec),
            plan=plan,
            component=component,
            origin=self.origin(component),
            spec=spec,
            limits=self.limits,
            capabilities=self.capabilities,
            shutdown=self.shutdown,
            python_paths=lambda: python_paths.get(component),
            metrics=self.metrics,
            memory_bytes=memory_bytes,
        )

    def session(self, store: Store) -> KeyValueSession:
        """The key-value handle table of an instance made by `instantiate` (for triggers)."""
        session: KeyValueSession = self._key_value.state(context_address(store))
        return session

    def wasi_plan(self, component: Component) -> WasiPlan:
        """How the Python WASI layer links `component` (for the wasi:http trigger).

        Raises `ComponentError` for a component that exports no `wasi:http/incoming-handler`.
        """
        plan = wasi_plan(self._plan(component))
        if plan is None:
            raise ComponentError(f"{self.origin(component)}: exports no wasi:http/incoming-handler")
        return plan

    def wasi(self, store: Store) -> WasiState:
        """The Python WASI state of an instance made by `instantiate` (for the wasi:http trigger)."""
        return self._python_wasi.state(context_address(store))

    def deadline(self, store: Store) -> Deadline:
        """The deadline of an instance made by `instantiate`."""
        deadline = deadlines.deadline_of(context_address(store))
        if deadline is None:
            raise ComponentError("this store was not made by Host.instantiate")
        return deadline

    # ------------------------------------------------------------ lifecycle

    def interrupt(self, grace: float = 0.0) -> None:
        """Stop every guest of this host `grace` seconds from now, and every later one at once.

        Guests running wasm stop within a quarter of a second of the cut-off
        with `GuestInterrupted`; for shutting a server down.
        """
        self.shutdown.begin(grace)

    def close(self) -> None:
        """Close every store this host opened from a URL, and stop its outbound HTTP client.

        Requests still in flight fail (the guests waiting for them see an error).
        """
        for store in self._stores_by_url.values():
            store.close()
        self._stores_by_url.clear()
        with self._http_lock:
            client, self._http_client = self._http_client, None
        if client is not None:
            client.close()

    def __enter__(self) -> Host:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _allowed_hosts(allowed: AllowedHosts | Sequence[str], every_host: bool) -> AllowedHosts:
    """`run`'s `allowed_outbound_hosts` (and `outbound_http`) as an `AllowedHosts`; `ConfigError` if bad."""
    if isinstance(allowed, str):
        raise ConfigError(
            f"allowed_outbound_hosts must be a list of entries, not the string {allowed!r}; "
            f"write [{allowed!r}]"
        )
    if not isinstance(allowed, AllowedHosts):
        entries = list(allowed)
        odd = next((entry for entry in entries if not isinstance(entry, str)), None)
        if odd is not None:
            raise ConfigError(
                f"allowed_outbound_hosts entries must be strings, not {type(odd).__name__} ({odd!r})"
            )
        allowed = AllowedHosts.parse(entries)
    if every_host:
        allowed = AllowedHosts((*allowed.entries, *AllowedHosts.parse(["*://*:*"]).entries))
    return allowed


def _interruptible(call: Callable[[], _T], deadline: Deadline) -> _T:
    """`call()`; on the main thread, run it on a helper so that Ctrl-C can stop the guest.

    A guest blocked in a host call (a sleep) cannot be stopped by epochs: if
    it is still there `_GRACE` seconds after Ctrl-C or after its deadline,
    it is left behind on its daemon thread (`deadline.abandoned`) and this
    returns at once with `KeyboardInterrupt` or `GuestTimeout`.
    """
    if threading.current_thread() is not threading.main_thread():
        return call()
    outcome: list[_T] = []
    failure: list[BaseException] = []
    # An Event, not Thread.join: a join interrupted by Ctrl-C can leave the
    # thread marked as finished while it still runs the guest.
    finished = threading.Event()

    def target() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:
            failure.append(exc)
        finally:
            finished.set()

    thread = threading.Thread(target=target, name="wasikv-run", daemon=True)
    try:
        # Inside the try: Ctrl-C can land in start() itself, once the guest
        # runs, and its store must then not be freed under it.
        thread.start()
        while not finished.wait(0.1):
            now = time.monotonic()
            if now > deadline.expires + _GRACE:
                deadline.stopped = "timeout"
                deadline.abandoned = True
                raise deadline.error("blocked in a host call past its deadline")
            if now > deadline.shutdown.at + _GRACE:
                deadline.stopped = "interrupted"
                deadline.abandoned = True
                raise deadline.error("blocked in a host call after the host was interrupted")
    except KeyboardInterrupt:
        deadline.cancel()
        # Abandoned until seen to stop: a second Ctrl-C in the wait below
        # must not let the caller free the store the guest still runs in.
        deadline.abandoned = True
        deadline.abandoned = not finished.wait(deadlines.CHECK + _GRACE)
        raise
    if failure:
        raise failure[0]
    return outcome[0]


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


def _drain_output_callbacks(timeout: float = 1.0) -> None:
    """Wait until wasmtime's threads have released every guest-output callback (but abandoned guests').

    wasmtime writes a guest's custom stdout/stderr from its own threads and
    releases the Python callback there when the stream's worker ends, a
    moment after the store is freed. A ctypes callback entered after the
    interpreter began finalizing cannot take the GIL and aborts the process
    ("panic in a function that cannot unwind"), so at exit, while threads can
    still run Python, let those releases happen first.
    """
    deadline = time.monotonic() + timeout
    while _pending_output_callbacks() and time.monotonic() < deadline:
        time.sleep(0.005)


def _pending_output_callbacks() -> bool:
    """Whether wasmtime holds a guest-output callback it will release, i.e. not an abandoned guest's.

    Waiting for those of an abandoned guest (blocked in a host call past
    its deadline) would only delay the exit: `run --timeout` exited a second late.
    """
    return any(callback not in abandoned_writers for callback in _capi.pending_output_callbacks())


atexit.register(_drain_output_callbacks)


__all__ = ["DEFAULT_STORE_URL", "ExitStatus", "GuestTrap", "Host"]
