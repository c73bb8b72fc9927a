"""The key-value watch trigger: calling `wasi:keyvalue/watcher` after committed writes.

Every `[[trigger.key-value]]` gets a `WatchRunner`: one thread that follows
its store's change feed (`Store.changes`) from a cursor, keeps the changes
whose key starts with the trigger's `prefix`, and calls the component's
`on-set(bucket, key, value)` or `on-delete(bucket, key)` for each. Every
write that goes through the store is seen, whoever made it: guests, host
Python code (`Host.bucket`), `wasikv kv`, and other processes sharing a
SQLite file or a Redis prefix.

Delivery model:

- *Order*: changes are delivered one at a time in commit order (`seq`
  order), so the changes of one key arrive in the order they were
  committed. Every change is delivered, with the value it wrote; writes are
  not coalesced. A runner that cannot keep up falls behind; it never blocks
  or fails a writer (it only reads the feed).
- *At least once*: the cursor (the `seq` of the last change handled) is
  stored in `<state dir>/watch/` after each batch, with an atomic replace, so
  a restarted runner resumes where it stopped; changes of a batch that was
  cut short by a crash are delivered again. Watchers should be idempotent.
  A trigger seen for the first time starts at the store's newest change.
  Memory stores do not outlive the process, so their cursors are not stored.
- *Instances*: one fresh instance per batch of up to `batch_size` changes
  (default 64): module state may carry over between the changes of a
  batch, never between batches. After a trap the instance is discarded and
  the next attempt gets a fresh one.
- *Failures*: a change whose delivery traps is retried, each time in a fresh
  instance, after 0.1 s, 0.5 s and 2 s (`RetryPolicy`); if the fourth attempt
  fails too it is logged as dropped (component, key, seq) and the runner
  moves on. A value larger than the host's `max_value_bytes` cannot be
  passed to a guest and is dropped at once, with a log line. When no
  instance can be created at all (the host's instance pool is full), the
  runner waits (50 ms doubling up to 2 s) and tries again for as long as it
  takes: that is never a reason to drop a change.
- *Delay*: a runner that is keeping up sees a change at once on memory and
  Redis stores (the store wakes it: a condition variable, a blocking
  ``XREAD``) and within `poll_interval` (default 50 ms) on SQLite, plus the
  time to instantiate the component and run the watcher (about 3-5 ms for a
  componentize-py guest). So the bound while keeping up is about 10 ms on
  memory and Redis and `poll_interval` + 10 ms on SQLite. A backlog is
  worked off at a few thousand changes per second; retries add up to 2.6 s
  for each failing change ahead in the feed.
- *Gaps*: feeds are bounded (each store keeps about the newest 100 000
  changes by default). A runner that falls further behind than that, or a
  cursor older than the feed, finds the feed starting after its cursor; it
  logs how many changes it missed and continues from the oldest one held.

A watcher that writes to keys it watches is told about its own writes: use
another prefix or another store for what it writes.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

from wasmtime import Store as WasmStore
from wasmtime.component import Component, Func, Instance

from .. import _canonical as cv
from .._capi import context_address
from ..app.loader import LoadedApp
from ..errors import ComponentError, GuestTrap, KeyValueError, StoreError, WasikvError
from ..host import Host
from ..keyvalue.session import KeyValueSession
from ..keyvalue.wit import BUCKET_TYPE
from ..linking import check_exports
from ..stores.base import Change
from ..stores.base import Store as KeyValueStore
from ..stores.memory import MemoryStore
from ..wit_types import STRING, U8, FuncSig, ListOf, Own
from ._exports import call_export, export_func

log = logging.getLogger("wasikv.watch")

WATCHER_INTERFACE = "wasi:keyvalue/watcher@0.2.0-draft2"
#: Every version of the watcher the trigger calls (with the same functions).
WATCHER_INTERFACES = (WATCHER_INTERFACE, "wasi:keyvalue/watcher@0.2.0-draft")
WATCH_WORLD = "wasikv:app/watch-trigger"
#: The exports the trigger calls, as `wit/deps/keyvalue/watcher.wit` declares them.
WATCHER_FUNCTIONS = {
    "on-set": FuncSig((("bucket", Own("bucket")), ("key", STRING), ("value", ListOf(U8))), None),
    "on-delete": FuncSig((("bucket", Own("bucket")), ("key", STRING)), None),
}
#: The environment variable that tells a watcher which store label it watches.
STORE_ENV = "WASIKV_WATCH_STORE"
#: Where cursors live, under an application's state directory.
CURSOR_DIR = "watch"

# Longest single wait for a store's wake-up, so that `stop` is never slow.
_MAX_NOTIFY_WAIT = 0.25
# Progress over changes the prefix filters out is saved at most this often.
_SKIP_SAVE_INTERVAL = 1.0
# Waits after instances could not be created: doubling from the first to the most.
_TRANSIENT_FIRST_WAIT = 0.05
_TRANSIENT_MAX_WAIT = 2.0
# A store that fails to read is retried after this long (and logged once a minute).
_STORE_RETRY = 1.0
_STORE_LOG_INTERVAL = 60.0


@dataclass(frozen=True)
class RetryPolicy:
    """How often a change whose delivery trapped is tried again.

    `delays[i]` is the wait before retry `i + 1`; a change is attempted
    `1 + len(delays)` times in all, then dropped.
    """

    delays: tuple[float, ...] = (0.1, 0.5, 2.0)

    @property
    def attempts(self) -> int:
        """Attempts per change, the first one included."""
        return 1 + len(self.delays)


class DeliveryFailed(WasikvError):
    """Delivering a change failed after `delivered` earlier changes of the batch succeeded.

    `retry` is False for changes that can never be delivered. `transient`
    marks failures that are not the change's: no instance could be created
    (the instance pool is full, memory is short); those are retried until
    they pass, without counting towards dropping the change.
    """

    def __init__(self, message: str, delivered: int, *, retry: bool = True, transient: bool = False) -> None:
        super().__init__(message)
        self.delivered = delivered
        self.retry = retry
        self.transient = transient


# ------------------------------------------------------------------ calling


class WatcherComponent:
    """A component exporting `wasi:keyvalue/watcher`, told about changes to one store label.

    Each `deliver` call runs in a fresh instance. The guest sees `env` plus
    `WASIKV_WATCH_STORE=<store label>`, and may open the labels in `grants`
    (all labels when None); it must be granted `store_label`.
    """

    def __init__(
        self,
        host: Host,
        component: Component,
        store_label: str,
        *,
        name: str = "watcher",
        grants: Iterable[str] | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> None:
        self.host = host
        self.component = component
        self.store_label = store_label
        self.name = name
        #: Seconds each call of `on-set`/`on-delete` may run; past it the delivery fails.
        self.timeout = timeout
        self.grants = None if grants is None else frozenset(grants)
        if self.grants is not None and store_label not in self.grants:
            raise ComponentError(f"watcher {name!r} is not granted the store {store_label!r} it watches")
        self.env = {**(env or {}), STORE_ENV: store_label}
        self.store = host.bucket(store_label).store
        self._exports = host.exports(component)
        #: The watcher interface the component exports (either version).
        self.interface = next((i for i in WATCHER_INTERFACES if i in self._exports), WATCHER_INTERFACE)

    def check(self) -> None:
        """Raise `ComponentError` unless the component exports a well-typed watcher and instantiates."""
        check_exports(
            self._exports,
            self.interface,
            WATCHER_FUNCTIONS,
            f"watcher component {self.name!r} ({self.host.origin(self.component)})",
            WATCH_WORLD,
        )
        try:
            with self._instance() as (store, instance):
                _watcher_funcs(store, instance, self.interface)
        except ComponentError as exc:
            raise ComponentError(f"watcher component {self.name!r}: {exc}") from None

    def deliver(self, changes: Sequence[Change]) -> int:
        """Call `on-set`/`on-delete` for `changes`, in order, in one fresh instance.

        Returns how many were delivered: all of them, or fewer when the guest
        holds on to so many buckets that another one cannot be opened (call
        again with the rest). Raises `DeliveryFailed` when a call traps or a
        change cannot be delivered, saying how many were delivered before.
        """
        if not changes:
            return 0
        delivered = 0
        try:
            with ExitStack() as stack:
                try:
                    store, instance = stack.enter_context(self._instance())
                except Exception as exc:
                    raise DeliveryFailed(f"cannot create an instance: {exc}", 0, transient=True) from exc
                on_set, on_delete = _watcher_funcs(store, instance, self.interface)
                ctx = context_address(store)
                session = self.host.session(store)
                deadline = self.host.deadline(store)
                limits = session.limits
                for change in changes:
                    if len(session.buckets) >= limits.max_open_buckets:
                        if delivered:
                            break  # the rest go to a fresh instance
                        raise DeliveryFailed(
                            "no bucket handle can be opened (max_open_buckets)", 0, retry=False
                        )
                    if change.value is not None and len(change.value) > limits.max_value_bytes:
                        raise DeliveryFailed(
                            f"the value of key {change.key!r} is {len(change.value)} bytes, more than "
                            f"max_value_bytes={limits.max_value_bytes} allows passing to a guest",
                            delivered,
                            retry=False,
                        )
                    deadline.restart()
                    _call_watcher(
                        store,
                        ctx,
                        on_set if change.value is not None else on_delete,
                        session,
                        self.store_label,
                        change,
                    )
                    delivered += 1
        except DeliveryFailed as failure:
            failure.delivered = delivered
            raise
        except (WasikvError, KeyValueError) as exc:
            raise DeliveryFailed(str(exc), delivered) from exc
        except Exception as exc:
            log.debug("watcher %s: unexpected error", self.name, exc_info=True)
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}", delivered) from exc
        return delivered

    def _instance(self) -> _CapturedInstance:
        return _CapturedInstance(self)


class _CapturedInstance:
    """`Host.instantiate` with the guest's output logged when the instance ends."""

    def __init__(self, watcher: WatcherComponent) -> None:
        self.watcher = watcher
        self.stdout = io.BytesIO()
        self.stderr = io.BytesIO()
        self._context: Any = None

    def __enter__(self) -> tuple[WasmStore, Instance]:
        w = self.watcher
        self._context = w.host.instantiate(
            w.component,
            argv=[w.name],
            env=w.env,
            grants=w.grants,
            stdout=self.stdout,
            stderr=self.stderr,
            timeout=w.timeout,
        )
        pair: tuple[WasmStore, Instance] = self._context.__enter__()
        return pair

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._context.__exit__(exc_type, exc, tb)
        finally:
            for stream, level in ((self.stdout, logging.INFO), (self.stderr, logging.WARNING)):
                output = stream.getvalue()
                if output:
                    for line in output.decode("utf-8", "replace").rstrip().splitlines():
                        log.log(level, "[%s] %s", self.watcher.name, line)


def _watcher_funcs(store: WasmStore, instance: Instance, interface: str) -> tuple[Func, Func]:
    on_set, on_delete = (
        export_func(store, instance, interface, name, WATCH_WORLD) for name in ("on-set", "on-delete")
    )
    return on_set, on_delete


def _call_watcher(
    store: WasmStore, ctx: int, func: Func, session: KeyValueSession, label: str, change: Change
) -> None:
    rep = session.open_bucket(label)
    args: list[cv.Filler] = [
        lambda addr: cv.put_own_resource(ctx, addr, rep, BUCKET_TYPE),
        partial(cv.put_string, value=change.key),
    ]
    if change.value is not None:
        args.append(partial(cv.put_bytes, value=change.value))
    try:
        call_export(store, func, args)
    except GuestTrap as trap:
        raise DeliveryFailed(str(trap), 0) from None
    except BaseException:
        # The handle never reached the guest.
        session.buckets.pop(rep, None)
        raise


# ------------------------------------------------------------------ cursors


class CursorFile:
    """A runner's cursor in a small JSON file, replaced atomically on every save."""

    def __init__(self, path: Path, identity: Mapping[str, str]) -> None:
        self.path = path
        self.identity = dict(identity)

    def load(self) -> int | None:
        """The saved cursor; None if there is none. Raises `ValueError` if the file is unreadable."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ValueError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        try:
            cursor = json.loads(text)["cursor"]
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"{self.path} is not a cursor file") from None
        if type(cursor) is not int or cursor < 0:
            raise ValueError(f"{self.path} holds an invalid cursor {cursor!r}")
        return cursor

    def save(self, cursor: int) -> None:
        """Write `cursor` (a crash leaves the old file or the new one, never a mix)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        body = json.dumps({**self.identity, "cursor": cursor}, indent=2) + "\n"
        try:
            temporary.write_text(body, encoding="utf-8")
            os.replace(temporary, self.path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise


def cursor_path(state_dir: Path, component: str, store_label: str, store_url: str, prefix: str) -> Path:
    """Where the cursor of one trigger is kept: one file per (component, store, prefix)."""
    digest = hashlib.sha256(f"{component}\0{store_url}\0{prefix}".encode()).hexdigest()[:12]
    return state_dir / CURSOR_DIR / f"{_slug(component)}.{_slug(store_label)}.{digest}.json"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text)[:40] or "_"


# ------------------------------------------------------------------ runners


class WatchRunner:
    """Follows one store's change feed and delivers matching changes to a watcher.

    `start` fixes the starting cursor before it returns (the saved one, or
    the store's newest change), so every write committed after `start`
    returns is delivered. `stop` finishes the change being delivered, saves
    the cursor and joins the thread.
    """

    def __init__(
        self,
        watcher: WatcherComponent,
        *,
        prefix: str = "",
        cursor_file: CursorFile | None = None,
        poll_interval: float = 0.05,
        batch_size: int = 64,
        retry: RetryPolicy | None = None,
    ) -> None:
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.watcher = watcher
        self.store: KeyValueStore = watcher.store
        self.prefix = prefix
        self.cursor_file = cursor_file
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self.retry = retry or RetryPolicy()
        self.name = f"{watcher.name}<-{watcher.store_label}:{prefix}*"
        self._stopping = threading.Event()
        self._progress = threading.Condition()
        self._thread: threading.Thread | None = None
        self._started = False
        self._cursor = 0
        self._saved: int | None = None
        self._saved_at = 0.0
        #: Changes delivered, dropped after failing, missed because the feed
        #: was pruned past the cursor, and failed attempts (retries included).
        self.delivered = 0
        self.dropped = 0
        self.missed = 0
        self.failures = 0

    @property
    def cursor(self) -> int:
        """The seq of the last change handled (delivered, dropped or filtered out)."""
        return self._cursor

    @property
    def ready(self) -> bool:
        """Whether the starting cursor is fixed (at once, unless the store was unreachable)."""
        return self._started

    @property
    def running(self) -> bool:
        """Whether the runner's thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Fix the starting cursor and start the thread.

        If the store cannot be reached now, the thread keeps trying, and a
        trigger without a saved cursor starts at the newest change of the
        moment the store answers.
        """
        if self._thread is not None:
            raise RuntimeError(f"watch runner {self.name} was already started")
        try:
            self._begin()
        except StoreError as exc:
            log.error("watch runner %s: cannot read the change feed yet: %s", self.name, exc)
        self._thread = threading.Thread(target=self._run, name=f"wasikv-watch {self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop after the current delivery, save the cursor, and wait for the thread."""
        self._stopping.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                log.warning("watch runner %s did not stop within %ss", self.name, timeout)

    def wait_for(self, seq: int, timeout: float) -> bool:
        """Block until the cursor reaches `seq` (for tests and benchmarks); False on timeout."""
        with self._progress:
            return self._progress.wait_for(lambda: self._cursor >= seq, timeout)

    # -- the thread --------------------------------------------------------

    def _begin(self) -> None:
        self._cursor = self._initial_cursor()
        self._started = True
        self._save(force=True)

    def _initial_cursor(self) -> int:
        last = self.store.last_change()
        if self.cursor_file is None:
            return last
        try:
            saved = self.cursor_file.load()
        except ValueError as exc:
            # At least once: rather everything the feed still holds than a silent loss.
            log.error("watch runner %s: %s; starting from the oldest change the store holds", self.name, exc)
            return 0
        if saved is None:
            return last
        if saved > last:
            log.warning(
                "watch runner %s: saved cursor %d is past the store's newest change %d (was the store "
                "recreated?); starting from the oldest change the store holds",
                self.name,
                saved,
                last,
            )
            return 0
        return saved

    def _run(self) -> None:
        failing_since: float | None = None
        last_logged = 0.0
        try:
            while not self._stopping.is_set():
                try:
                    if not self._started:
                        self._begin()
                    batch = self.store.changes(self._cursor, self.batch_size)
                except StoreError as exc:
                    now = time.monotonic()
                    if failing_since is None or now - last_logged >= _STORE_LOG_INTERVAL:
                        log.error("watch runner %s: cannot read the change feed: %s", self.name, exc)
                        last_logged = now
                    failing_since = failing_since or now
                    self._stopping.wait(_STORE_RETRY)
                    continue
                failing_since = None
                if not batch:
                    self._save(force=False)
                    self._idle()
                    continue
                first = batch[0].seq
                if first > self._cursor + 1:
                    missed = first - self._cursor - 1
                    self.missed += missed
                    log.error(
                        "watch runner %s missed %d changes (seq %d to %d): the store's change feed no "
                        "longer holds them (the runner fell further behind than the feed's window, or "
                        "the store lost data)",
                        self.name,
                        missed,
                        self._cursor + 1,
                        first - 1,
                    )
                if not self._handle(batch):
                    return
        except BaseException:
            log.exception("watch runner %s stopped by an unexpected error", self.name)
            raise
        finally:
            if self._started:
                self._save(force=True)

    def _idle(self) -> None:
        if self.store.change_notifications:
            try:
                self.store.wait_for_change(self._cursor, _MAX_NOTIFY_WAIT)
            except StoreError:
                self._stopping.wait(self.poll_interval)
        else:
            self._stopping.wait(self.poll_interval)

    def _handle(self, batch: list[Change]) -> bool:
        """Deliver the matching changes of `batch`; False if stopped part-way."""
        matching = [change for change in batch if change.key.startswith(self.prefix)]
        done = 0
        attempts = 0
        waits = 0
        while done < len(matching):
            try:
                delivered = self.watcher.deliver(matching[done:])
            except DeliveryFailed as failure:
                delivered = failure.delivered
                if delivered:
                    attempts = 0
                    self._advance(matching[done + delivered - 1].seq, delivered=delivered)
                    done += delivered
                if failure.transient:
                    # Not the change's fault: wait (up to 2 s at a time) and try again.
                    delay = min(_TRANSIENT_MAX_WAIT, _TRANSIENT_FIRST_WAIT * 2 ** min(waits, 10))
                    if waits % 30 == 0:  # the first time, then about once a minute
                        log.warning("watcher %s: %s; trying again", self.watcher.name, failure)
                    waits += 1
                    if self._stopping.wait(delay):
                        return False
                    continue
                waits = 0
                change = matching[done]
                attempts += 1
                self.failures += 1
                if failure.retry and attempts < self.retry.attempts:
                    delay = self.retry.delays[attempts - 1]
                    log.warning(
                        "watcher %s failed on %s of key %r (seq %d), attempt %d of %d; retrying in %ss: %s",
                        self.watcher.name,
                        _what(change),
                        change.key,
                        change.seq,
                        attempts,
                        self.retry.attempts,
                        delay,
                        failure,
                    )
                    if self._stopping.wait(delay):
                        return False
                    continue
                log.error(
                    "watcher %s: dropped %s of key %r (seq %d) after %d attempt%s: %s",
                    self.watcher.name,
                    _what(change),
                    change.key,
                    change.seq,
                    attempts,
                    "" if attempts == 1 else "s",
                    failure,
                )
                self.dropped += 1
                attempts = 0
                done += 1
                self._advance(change.seq)
                continue
            if delivered:
                attempts = 0
                done += delivered
                self._advance(matching[done - 1].seq, delivered=delivered)
            if self._stopping.is_set() and done < len(matching):
                return False
        self._advance(batch[-1].seq)
        self._save(force=bool(matching))
        return True

    def _advance(self, seq: int, *, delivered: int = 0) -> None:
        with self._progress:
            self.delivered += delivered
            self._cursor = max(self._cursor, seq)
            self._progress.notify_all()

    def _save(self, *, force: bool) -> None:
        if self.cursor_file is None or self._saved == self._cursor:
            return
        now = time.monotonic()
        if not force and now - self._saved_at < _SKIP_SAVE_INTERVAL:
            return
        try:
            self.cursor_file.save(self._cursor)
        except OSError as exc:
            log.error(
                "watch runner %s: cannot save its cursor to %s: %s", self.name, self.cursor_file.path, exc
            )
            return
        self._saved = self._cursor
        self._saved_at = now


def _what(change: Change) -> str:
    return "on-set" if change.value is not None else "on-delete"


# ------------------------------------------------------------ applications


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
    ) -> WatchTriggers:
        """Runners for a `wasikv.app.loader.LoadedApp`'s key-value triggers, on `host`.

        `timeout` is how long one `on-set`/`on-delete` call may run (None: no
        limit); a call past it fails like a trap (retried, then dropped).

        Cursors are kept under `state_dir` (the manifest's `.wasikv/` by
        default). Raises `ComponentError` if a watcher component cannot be
        loaded or does not export `wasi:keyvalue/watcher`, and `StoreError`
        if a watched store has no change feed. A store that is unreachable
        (Redis down) is not an error: its runner retries until it answers.
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
                grants=loaded.grants[trigger.component],
                env=spec.environment,
                timeout=timeout,
            )
            watcher.check()
            if type(watcher.store).changes is KeyValueStore.changes:
                raise StoreError(
                    f"[[trigger.key-value]] on store {trigger.store!r}: {type(watcher.store).__name__} "
                    "has no change feed, so it cannot be watched"
                )
            cursor_file = None
            if not isinstance(watcher.store, MemoryStore):
                path = cursor_path(
                    directory, trigger.component, trigger.store, watcher.store.url, trigger.prefix
                )
                cursor_file = CursorFile(
                    path,
                    {
                        "component": trigger.component,
                        "store": trigger.store,
                        "url": _redacted(watcher.store.url),
                        "prefix": trigger.prefix,
                    },
                )
            runners.append(
                WatchRunner(
                    watcher,
                    prefix=trigger.prefix,
                    cursor_file=cursor_file,
                    poll_interval=poll_interval,
                    batch_size=batch_size,
                    retry=retry,
                )
            )
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

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop every runner and wait for them (they stop in parallel)."""
        for runner in self.runners:
            runner._stopping.set()
        for runner in self.runners:
            runner.stop(timeout)

    def __len__(self) -> int:
        return len(self.runners)

    def __enter__(self) -> WatchTriggers:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _redacted(url: str) -> str:
    # Never write a password (redis://user:secret@host) into a state file.
    return re.sub(r"//([^/@:]*):[^/@]*@", r"//\1:***@", url)


__all__ = [
    "STORE_ENV",
    "WATCHER_INTERFACE",
    "WATCHER_INTERFACES",
    "CursorFile",
    "DeliveryFailed",
    "RetryPolicy",
    "WatchRunner",
    "WatchTriggers",
    "WatcherComponent",
    "cursor_path",
]
