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
  saved after each batch as the trigger's *position*, in the watched store
  itself (`Store.save_position`, under `position_name(app, component,
  prefix)`), beside the data and the change feed but outside the keyspace
  and the feed. A restarted runner resumes where it stopped; changes of a
  batch that was cut short by a crash are delivered again. Watchers should
  be idempotent. Because the position lives and dies with the feed it
  points into, no file outside the store can lose it: a trigger without a
  position never ran on this store (or the store was recreated, feed and
  positions together) and starts at the store's newest change, saving that
  position at once. Memory stores do not outlive the process
  (`keeps_positions` is False), so their runners always start at the
  newest change.
- *Old cursor files*: wasikv used to keep positions in
  `<state dir>/watch/<trigger>.json`. When the store holds no position for
  a trigger and that file exists, it is read once, strictly (a regular file
  of at most 4 KiB holding `{"cursor": <seq>}`; opened without blocking, so
  a FIFO cannot hang start-up), its position is saved into the store and
  the file is deleted. A file that cannot be used is a start-up error
  (`ConfigError`) naming it, never a silent replay or skip.
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
  position older than the feed, finds the feed starting after its cursor; it
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
import stat
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
from ..errors import ComponentError, ConfigError, GuestTrap, KeyValueError, StoreError, WasikvError
from ..host import Host
from ..keyvalue.session import KeyValueSession
from ..keyvalue.wit import BUCKET_TYPE
from ..linking import check_exports
from ..stores.base import S64_MAX, Change
from ..stores.base import Store as KeyValueStore
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
#: Where wasikv used to keep cursor files, under an application's state directory.
CURSOR_DIR = "watch"
#: The largest old cursor file that is read (they hold a few short fields).
OLD_CURSOR_MAX_BYTES = 4096
# Longer position names are replaced by a digest (stores take a few hundred bytes).
_MAX_POSITION_NAME = 256

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


# ---------------------------------------------------------------- positions


def position_name(app: str, component: str, prefix: str) -> str:
    """The name a trigger's position is saved under in its store: one per (application, component, prefix).

    A JSON list, so that it is unambiguous and readable in `sqlite3` or
    `redis-cli`; a name longer than 256 bytes becomes `sha256:<hex digest>`.
    """
    name = json.dumps([app, component, prefix], ensure_ascii=False, separators=(",", ":"))
    encoded = name.encode("utf-8")
    if len(encoded) > _MAX_POSITION_NAME:
        return "sha256:" + hashlib.sha256(encoded).hexdigest()
    return name


def cursor_path(state_dir: Path, component: str, store_label: str, store_url: str, prefix: str) -> Path:
    """Where wasikv used to keep the cursor of one trigger (read once, to migrate it into the store)."""
    digest = hashlib.sha256(f"{component}\0{store_url}\0{prefix}".encode()).hexdigest()[:12]
    return state_dir / CURSOR_DIR / f"{_slug(component)}.{_slug(store_label)}.{digest}.json"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text)[:40] or "_"


def read_old_cursor(path: Path) -> int | None:
    """The cursor in an old cursor file; None if there is no file.

    Never blocks: the file is opened non-blocking and anything but a regular
    file of at most `OLD_CURSOR_MAX_BYTES` holding a JSON object with a
    non-negative int `cursor` raises `ConfigError` (naming the file and what
    to do) without being read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise _old_cursor_error(path, f"cannot be opened ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _old_cursor_error(path, f"is {_file_kind(info.st_mode)}, not a regular file")
        if info.st_size > OLD_CURSOR_MAX_BYTES:
            raise _old_cursor_error(path, f"is {info.st_size} bytes, more than a cursor file holds")
        chunks: list[bytes] = []
        size = 0
        while size <= OLD_CURSOR_MAX_BYTES:
            chunk = os.read(fd, OLD_CURSOR_MAX_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise _old_cursor_error(path, f"cannot be read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    if size > OLD_CURSOR_MAX_BYTES:
        raise _old_cursor_error(path, "grew past the size of a cursor file while being read")
    try:
        document = json.loads(b"".join(chunks).decode("utf-8"))
    except ValueError:
        raise _old_cursor_error(path, "is not valid JSON") from None
    cursor = document.get("cursor") if isinstance(document, dict) else None
    if type(cursor) is not int or not 0 <= cursor <= S64_MAX:
        shown = repr(cursor)[:40]
        raise _old_cursor_error(path, f"holds no valid cursor (a non-negative integer), but {shown}")
    return cursor


def _old_cursor_error(path: Path, problem: str) -> ConfigError:
    return ConfigError(
        f"old watch cursor file {path} {problem}. Delete it to start this trigger from the store's "
        "newest change (changes written while wasikv was stopped are then not delivered), or make it "
        'a JSON file holding {"cursor": <seq of the last change handled>} to resume after that change'
    )


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


# ------------------------------------------------------------------ runners


class WatchRunner:
    """Follows one store's change feed and delivers matching changes to a watcher.

    `start` fixes the starting cursor before it returns (the position saved
    in the store under `position`, or the store's newest change), so every
    write committed after `start` returns is delivered. `stop` finishes the
    change being delivered, saves the position and joins the thread.

    With `position` None nothing is saved and every start begins at the
    newest change. `old_cursor` names an old cursor file to migrate into the
    store (see `prepare`).
    """

    def __init__(
        self,
        watcher: WatcherComponent,
        *,
        prefix: str = "",
        position: str | None = None,
        old_cursor: Path | None = None,
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
        if position is not None and type(self.store).load_position is KeyValueStore.load_position:
            raise StoreError(f"{type(self.store).__name__} keeps no change-feed positions")
        self.prefix = prefix
        #: The name of this runner's position in its store (None: not saved).
        self.position = position
        #: The old cursor file to migrate into the store, if it exists.
        self.old_cursor = old_cursor if position is not None else None
        self._prepared = False
        self._old_value: int | None = None
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
        self._save_failed_at: float | None = None
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

    def prepare(self) -> None:
        """Read the old cursor file, if the store holds no position and the file exists.

        Raises `ConfigError` naming the file when it cannot be used. Runs once
        (`WatchTriggers.from_app` calls it, `start` does if nobody did); the
        position read is saved into the store, and the file deleted, when the
        runner starts.
        """
        if self._prepared:
            return
        path = self.old_cursor
        if path is not None and self.position is not None:
            try:
                saved = self.store.load_position(self.position)
            except StoreError:
                saved = None  # unknown yet: read the file now, decide when the store answers
            if saved is None:
                try:
                    self._old_value = read_old_cursor(path)
                except ConfigError as exc:
                    raise ConfigError(f"watch trigger {self.name}: {exc}") from None
            elif os.path.lexists(path):
                log.info(
                    "watch runner %s: ignoring the old cursor file %s: the store holds the trigger's "
                    "position (%d); the file can be deleted",
                    self.name,
                    path,
                    saved,
                )
        self._prepared = True

    def start(self) -> None:
        """Fix the starting cursor and start the thread.

        If the store cannot be reached now, the thread keeps trying, and a
        trigger without a saved position starts at the newest change of the
        moment the store answers. Raises `ConfigError` if an old cursor file
        cannot be used (see `prepare`).
        """
        if self._thread is not None:
            raise RuntimeError(f"watch runner {self.name} was already started")
        self.prepare()
        try:
            self._begin()
        except StoreError as exc:
            log.error("watch runner %s: cannot read the change feed yet: %s", self.name, exc)
        self._thread = threading.Thread(target=self._run, name=f"wasikv-watch {self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop after the current delivery, save the position, and wait for the thread."""
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
        if self.position is None:
            return last
        saved = self.store.load_position(self.position)
        if self._old_value is not None and self.old_cursor is not None:
            saved = self._migrate(self.position, self.old_cursor, saved, self._old_value)
        if saved is None:
            return last
        if saved > last:
            log.warning(
                "watch runner %s: saved position %d is past the store's newest change %d (was the store "
                "recreated?); starting from the oldest change the store holds",
                self.name,
                saved,
                last,
            )
            return 0
        return saved

    def _migrate(self, position: str, path: Path, saved: int | None, old: int) -> int:
        """Save the old cursor file's position into the store (unless it has one), then delete the file."""
        if saved is None:
            self.store.save_position(position, old)
            saved = old
            log.info("watch runner %s: moved its position %d from %s into the store", self.name, old, path)
        self._old_value = None
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning(
                "watch runner %s: cannot delete the old cursor file %s (%s); it is no longer used, delete it",
                self.name,
                path,
                exc.strerror or exc,
            )
        else:
            log.info("watch runner %s: deleted the old cursor file %s", self.name, path)
        try:
            path.parent.rmdir()  # only once the last old file is gone
        except OSError:
            pass
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
        if self.position is None or self._saved == self._cursor:
            return
        now = time.monotonic()
        if not force and now - self._saved_at < _SKIP_SAVE_INTERVAL:
            return
        self._saved_at = now
        try:
            self.store.save_position(self.position, self._cursor)
        except StoreError as exc:
            # The next batch saves again; a store that stays down is logged once a minute.
            if self._save_failed_at is None or now - self._save_failed_at >= _STORE_LOG_INTERVAL:
                log.error("watch runner %s: cannot save its position %d: %s", self.name, self._cursor, exc)
                self._save_failed_at = now
            return
        self._saved = self._cursor
        self._save_failed_at = None


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
                grants=loaded.grants[trigger.component],
                env=spec.environment,
                timeout=timeout,
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
                old_cursor = cursor_path(
                    directory, trigger.component, trigger.store, watcher.store.url, trigger.prefix
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


__all__ = [
    "STORE_ENV",
    "WATCHER_INTERFACE",
    "WATCHER_INTERFACES",
    "DeliveryFailed",
    "RetryPolicy",
    "WatchRunner",
    "WatchTriggers",
    "WatcherComponent",
    "cursor_path",
    "position_name",
    "read_old_cursor",
]
