"""One live instance of a component: its wasmtime store, its capabilities' state, its deadline.

`Host.instantiate` makes one for a single block of calls and frees it after;
`wasikv.reuse` keeps one across several requests, one call at a time, and
frees it when it is retired. Either way the instance is set up and torn
down here, in one place.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path

from wasmtime import Engine, ExitTrap, Store, WasiConfig, WasmtimeError
from wasmtime.component import Component, Func, Instance, Linker

from .capability import Capability, InstanceSpec, OutputStream
from .errors import ComponentError
from .limits import Limits
from .metrics import Metrics
from .runtime import _capi, deadlines, guest_traps
from .runtime._capi import context_address
from .runtime.deadlines import Deadline, Shutdown
from .runtime.guest_errors import GuestStderr
from .runtime.linking import LinkPlan

_Writer = Callable[[bytes], int]

#: The output callbacks of guests left running in a host call (`Deadline.abandoned`):
#: their stores are never freed, so wasmtime never releases these.
abandoned_writers: set[_Writer] = set()


class LiveInstance:
    """An instance of a component in its own wasmtime store, given an `InstanceSpec`.

    Made by `Host.open_instance`. `store`, `instance` and `deadline` are what
    calls need; `calls` wraps each use (its deadline restarted from the
    second use on, wasmtime's errors raised as `GuestTrap`); `close` frees
    it, unless a guest was left blocked in a host call in it
    (`deadline.abandoned`), whose store then stays alive for good.
    """

    def __init__(
        self,
        *,
        engine: Engine,
        linker: Linker,
        plan: LinkPlan,
        component: Component,
        origin: str,
        spec: InstanceSpec,
        limits: Limits,
        capabilities: Sequence[Capability],
        shutdown: Shutdown,
        python_paths: Callable[[], Sequence[Path] | None],
        metrics: Metrics | None,
        memory_bytes: int | None = None,
    ) -> None:
        store = Store(engine)
        store.set_limits(
            memory_size=limits.max_memory_bytes if memory_bytes is None else memory_bytes,
            table_elements=limits.max_table_elements,
            instances=limits.max_instances,
            tables=limits.max_tables,
            memories=limits.max_memories,
        )
        wasi = WasiConfig()
        wasi.argv = list(spec.argv)
        wasi.env = list(spec.env.items())
        #: The guest's stderr, its tracebacks told in the app's terms (see `Host.instantiate`).
        self.errors = GuestStderr(
            spec.stderr if spec.stderr is not None else guest_traps.ProcessStderr(),
            python_paths,
            verbose=guest_traps.verbose(),
        )
        # Every capability writing the guest's stderr (the Python WASI layer too) writes it through `errors`.
        spec = replace(spec, stderr=self.errors)
        self._writers = _route_output(wasi, spec.stdout, self.errors)
        store.set_wasi(wasi)
        ctx = context_address(store)
        # Armed first: a capability's blocking host calls wait on it.
        deadline = Deadline(spec.timeout, shutdown)
        deadline.explain = partial(guest_traps.explain, stderr=self.errors)
        deadlines.arm(store, ctx, deadline)
        opened: list[Capability] = []
        try:
            for capability in capabilities:
                capability.open(store, ctx, plan, spec)
                opened.append(capability)
        except BaseException:
            for capability in opened:
                capability.close(ctx)
            deadlines.disarm(ctx)
            store.close()
            raise
        self.store = store
        self.ctx = ctx
        self.deadline = deadline
        self.component = component
        #: How many times `calls` was entered.
        self.uses = 0
        #: Exported functions its users looked up, by name, for its later uses
        #: (a lookup is four C calls that each let other threads take the GIL).
        self.functions: dict[str, Func] = {}
        self._capabilities = capabilities
        self._metrics = metrics
        self._closed = False
        if metrics is not None:
            metrics.instances.inc()
            started = time.perf_counter()
        try:
            try:
                self.instance: Instance = linker.instantiate(store, component)
            except WasmtimeError as exc:
                if deadline.stopped is not None:  # stopped while its start-up code ran
                    raise deadline.error(str(exc)) from None
                raise ComponentError(f"{origin}: cannot instantiate: {exc}") from None
        except BaseException:
            self.close()
            raise
        if metrics is not None:
            metrics.instantiate_seconds.labels(origin).observe(time.perf_counter() - started)

    @contextmanager
    def calls(self) -> Iterator[None]:
        """One use of the instance: a trap of a call made in the block is raised as a `GuestTrap`.

        The deadline runs from the instance's start for its first use and
        is restarted for every later one. The guest's stderr is passed on
        up to its last line when the block ends (`GuestStderr.finish`).
        """
        if self.uses:
            self.deadline.restart()
            self.errors.forget_exception()
        self.uses += 1
        try:
            yield
        except WasmtimeError as exc:
            if isinstance(exc, ExitTrap):
                raise
            raise self.deadline.error(str(exc)) from None
        finally:
            self.errors.finish()

    @property
    def usable(self) -> bool:
        """Whether another use may follow: not stopped, not left blocked, not closed."""
        return not self._closed and self.deadline.stopped is None and not self.deadline.abandoned

    def close(self) -> None:
        """Free the instance (once), unless a guest was left blocked in a host call in it."""
        if self._closed:
            return
        self._closed = True
        self.errors.finish()
        if self._metrics is not None:
            self._metrics.instances.dec()
        if not self.deadline.abandoned:
            for capability in self._capabilities:
                capability.close(self.ctx)
            deadlines.disarm(self.ctx)
            # Free the wasmtime store now, on this thread, while the
            # interpreter runs: left to the garbage collector (a traceback
            # cycle can keep it until interpreter shutdown), its drop runs
            # ctypes finalizers on wasmtime's threads, which abort the
            # process when they cannot take the GIL.
            self.store.close()
        else:
            # A thread still runs the guest in this store: never free it,
            # not even when the interpreter exits (nor wait for its output).
            _capi.leak_store(self.store)
            abandoned_writers.update(self._writers)


def _route_output(
    wasi: WasiConfig, stdout: OutputStream | None, stderr: OutputStream | None
) -> list[_Writer]:
    """Send the guest's output to `stdout` and `stderr` (None: this process's); return the callbacks."""
    writers: list[_Writer] = []
    if stdout is None:
        wasi.inherit_stdout()
    else:
        wasi.stdout_custom = writer = _writer(stdout)
        writers.append(writer)
    if stderr is None:
        wasi.inherit_stderr()
    else:
        wasi.stderr_custom = writer = _writer(stderr)
        writers.append(writer)
    return writers


def _writer(stream: OutputStream) -> _Writer:
    def write(data: bytes) -> int:
        stream.write(data)
        return len(data)

    return write


__all__ = ["LiveInstance", "abandoned_writers"]
