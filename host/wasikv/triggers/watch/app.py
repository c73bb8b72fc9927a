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
from ..runtime import TriggerExport, TriggerRuntime
from .delivery import WATCH_WORLD, WATCHER_FUNCTIONS, WATCHER_INTERFACES, RetryPolicy, WatcherComponent
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

    def __init__(self, runners: Sequence[WatchRunner]) -> None:
        self.runners = list(runners)

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
            runner = WatchRunner(
                watcher,
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
        return cls(runners)

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
        for runner in self.runners:
            log.info("watching %s", runner.name)

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

    def lags(self) -> list[tuple[str, int]]:
        """How many committed changes each running trigger has yet to handle: (runner name, count).

        Runners whose store cannot be read now are left out.
        """
        lags = []
        for runner in self.runners:
            if not runner.ready:
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
