"""`WatchTriggers`: the runners of an application's `[[trigger.key-value]]` tables, and their runtime."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from wasmtime.component import Component

from ...app.loader import LoadedApp
from ...errors import ComponentError, StoreError
from ...host import Host
from .._instance import instance_spec
from ..runtime import Swap, TriggerExport, TriggerRuntime
from .delivery import WATCH_WORLD, WATCHER_FUNCTIONS, WATCHER_INTERFACES, RetryPolicy, WatcherComponent
from .lease import DEFAULT_LEASE, Lease, LeaseCoordinator, check_lease_time, holder_name
from .positions import cursor_path, position_name
from .runner import WatchRunner

log = logging.getLogger("wasikv.watch")


class WatchTriggers:
    """Every `[[trigger.key-value]]` of an application, as runners started and stopped together.

    ```python
    watchers = WatchTriggers.from_app(loaded, host)   # checks every watcher component
    watchers.start()
    ...
    watchers.stop()                                   # before host.close()
    ```
    """

    def __init__(
        self, runners: Sequence[WatchRunner], *, group: str = "", explicit: Sequence[bool] = ()
    ) -> None:
        self.runners = list(runners)
        #: The heartbeat group of the processes that share these triggers (the app's name).
        self.group = group
        # Which runners' lease times the manifest set (`set_lease_time` leaves them).
        self._explicit = list(explicit) or [False] * len(self.runners)
        self._coordinator: LeaseCoordinator | None = None

    @classmethod
    def from_app(
        cls,
        loaded: LoadedApp,
        host: Host,
        *,
        state_dir: str | Path | None = None,
        poll_interval: float = 0.05,
        batch_size: int = 64,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        own_writes: bool = False,
    ) -> WatchTriggers:
        """Runners for a `wasikv.app.loader.LoadedApp`'s key-value triggers, on `host`.

        `timeout` is how long one `on-set`/`on-delete` call may run (None: no
        limit); a call past it fails like a trap (retried, then dropped),
        even one blocked in a host call. With `own_writes` a trigger's
        deliveries are told about their own writes under its prefix too.

        Positions are kept in the watched stores (those whose
        `keeps_positions` is True), named by `position_name`. Old cursor files
        under `state_dir` (the manifest's `.wasikv/` by default) are read here
        and moved into the store at `start`.

        Raises `ComponentError` if a watcher component cannot be loaded or
        does not export `wasi:keyvalue/watcher`, `StoreError` if a watched
        store has no change feed, and `ConfigError` if an old cursor file
        cannot be used. A store that is unreachable (Redis down) is not an
        error: its runner retries until it answers.
        """
        manifest = loaded.manifest
        directory = Path(state_dir) if state_dir is not None else Path(manifest.state_dir)
        components: dict[str, Component] = {}
        runners: list[WatchRunner] = []
        holder = holder_name()
        for trigger in manifest.kv_triggers:
            spec = manifest.components[trigger.component]
            component = components.get(trigger.component)
            if component is None:
                try:
                    component = components[trigger.component] = host.load(spec.source)
                except ComponentError as exc:
                    raise ComponentError(f"watcher component {trigger.component!r}: {exc}") from None
            watcher = WatcherComponent(
                host,
                component,
                trigger.store,
                name=trigger.component,
                spec=instance_spec(loaded, trigger.component, timeout),
            )
            watcher.check()
            if not watcher.store.has_change_feed:
                raise StoreError(
                    f"[[trigger.key-value]] on store {trigger.store!r}: {type(watcher.store).__name__} "
                    "has no change feed, so it cannot be watched"
                )
            position = old_cursor = None
            if watcher.store.keeps_positions:
                position = position_name(manifest.name, trigger.component, trigger.prefix)
                # Old cursor files were named after the URL as configured,
                # credentials and all (a store's `url` is redacted now).
                configured = loaded.stores.get(trigger.store, watcher.store.url)
                old_cursor = cursor_path(
                    directory, trigger.component, trigger.store, configured, trigger.prefix
                )
            elif watcher.store.durable:
                log.warning(
                    "[[trigger.key-value]] on store %r: %s keeps no positions, so the trigger starts at "
                    "the newest change on every start (changes written while stopped are not delivered)",
                    trigger.store,
                    type(watcher.store).__name__,
                )
            lease = None
            if watcher.store.has_leases:
                lease = Lease(
                    watcher.store,
                    position_name(manifest.name, trigger.component, trigger.prefix),
                    trigger.lease_seconds or DEFAULT_LEASE,
                    holder,
                )
            runner = WatchRunner(
                watcher,
                lease=lease,
                prefix=trigger.prefix,
                position=position,
                old_cursor=old_cursor,
                poll_interval=poll_interval,
                batch_size=batch_size,
                retry=retry,
                own_writes=own_writes,
            )
            runner.prepare()
            runners.append(runner)
        explicit = [trigger.lease_seconds is not None for trigger in manifest.kv_triggers]
        return cls(runners, group=manifest.name, explicit=explicit)

    def set_lease_time(self, seconds: float) -> None:
        """Use `seconds` as the lease time of every trigger whose manifest sets none (`--watch-lease`).

        Raises `ConfigError` unless it is a number of seconds from 1 to 3600.
        """
        seconds = check_lease_time(seconds, "--watch-lease")
        for runner, explicit in zip(self.runners, self._explicit, strict=True):
            if runner.lease is not None and not explicit:
                runner.lease.seconds = seconds

    def swap(self, name: str, component: Component) -> Swap | None:
        """Deliver to `component` as watcher `name` once the returned swap is called (see `TriggerService`).

        Each runner of `name` gets a new `WatcherComponent` with the old one's
        store and instance spec, checked (instantiated) here; a batch in
        progress finishes on the old version, and the next batch, or the next
        retry of a failing change, goes to the new one.
        """
        runners = [runner for runner in self.runners if runner.watcher.name == name]
        if not runners:
            return None
        watchers = []
        for runner in runners:
            old = runner.watcher
            new = WatcherComponent(old.host, component, old.store_label, name=name, spec=old.spec)
            new.check()  # its errors name the component
            watchers.append(new)

        def put_in_place() -> None:
            for runner, watcher in zip(runners, watchers, strict=True):
                runner.use(watcher)

        return put_in_place

    def counts(self) -> list[tuple[str, int, int]]:
        """Each trigger's takeovers and changes delivered again after them: (runner name, both)."""
        return [(runner.name, runner.takeovers, runner.redelivered) for runner in self.runners]

    def start(self) -> None:
        """Start every runner (each fixes its starting cursor before this returns)."""
        started: list[WatchRunner] = []
        try:
            for runner in self.runners:
                runner.start()
                started.append(runner)
        except BaseException:
            WatchTriggers(started).stop()
            raise
        leases = [runner.lease for runner in self.runners if runner.lease is not None]
        if leases:
            self._coordinator = LeaseCoordinator(leases, self.group)
            self._coordinator.start()
        for runner in self.runners:
            if runner.lease is None or runner.delivering:
                log.info("watching %s", runner.name)
            else:
                log.info("watching %s once this process gets its lease (another one holds it)", runner.name)

    def save_starts(self) -> None:
        """Save every runner's starting position without starting it (see `WatchRunner.save_start`)."""
        for runner in self.runners:
            if runner.position is not None:
                runner.save_start()

    def drain(self, finish_by: float) -> None:
        """Start no new batch; each batch in progress may run until `finish_by` (monotonic); see `stop`."""
        for runner in self.runners:
            runner.request_stop(finish_by)

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop every runner and wait for them (they stop in parallel)."""
        for runner in self.runners:
            runner.request_stop()
        for runner in self.runners:
            runner.stop(timeout)
        # After the runners, which release their leases as they stop.
        if self._coordinator is not None:
            self._coordinator.stop()
            self._coordinator = None

    def lags(self) -> list[tuple[str, int]]:
        """How many committed changes each running trigger has yet to handle: (runner name, count).

        Runners whose store cannot be read now are left out.
        """
        lags = []
        for runner in self.runners:
            if not runner.ready or not runner.delivering:
                continue
            try:
                lags.append((runner.name, max(0, runner.store.last_change() - runner.cursor)))
            except StoreError:
                continue
        return lags

    def __len__(self) -> int:
        return len(self.runners)

    def __enter__(self) -> WatchTriggers:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


#: Key-value triggers: runners the app starts at start-up and stops on close.
WATCH_RUNTIME = TriggerRuntime(
    exports=(TriggerExport(WATCH_WORLD, WATCHER_INTERFACES, WATCHER_FUNCTIONS),),
    prepare=WatchTriggers.from_app,
)
