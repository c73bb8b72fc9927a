"""`WatchRunner`: one thread following a store's change feed and delivering to a watcher."""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import Future
from functools import partial
from pathlib import Path

from ...errors import ConfigError, CorruptPosition, StoreError
from ...runtime import deadlines
from ...runtime.workers import WorkerPool
from ...stores.base import Change, LeaseState
from ...stores.base import Store as KeyValueStore
from .calls import DeliveryCall, OwnWrites
from .delivery import DeliveryFailed, RetryPolicy, WatcherComponent
from .lease import Lease
from .positions import read_old_cursor

log = logging.getLogger("wasikv.watch")
#: The logger of one INFO line per batch delivered, and one per lease taken or
#: handed over (`wasikv up` prints it with the access log).
DELIVERY_LOGGER = "wasikv.watch.deliveries"
delivery_log = logging.getLogger(DELIVERY_LOGGER)


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
#: Watcher calls blocked past their deadline that one trigger may leave
#: running (each keeps its instance's memory until its host call returns).
MAX_ABANDONED = 8
# A call still running this long after its deadline is blocked in a host
# call (epochs stop running wasm within a tick): it is given up.
_BLOCKED_GRACE = 1.0
# How often the runner looks at the call it waits for.
_WATCH_INTERVAL = 0.05
# When stopping: how long the call in progress may finish its change before
# it is cancelled, and how long a cancelled call may take to trap before it
# is given up as blocked.
_STOP_GRACE = 0.5
_CANCEL_GRACE = deadlines.CHECK + 0.25


class _Stopped(Exception):
    """The runner was stopped while a call delivered `delivered` changes."""

    def __init__(self, delivered: int) -> None:
        super().__init__("stopped")
        self.delivered = delivered


class WatchRunner:
    """Follows one store's change feed and delivers matching changes to a watcher.

    `start` fixes the starting cursor before it returns (the position saved
    in the store under `position`, or the store's newest change), so every
    write committed after `start` returns is delivered. `stop` ends the
    delivery in progress (see below), saves the position and joins the thread.

    With `position` None nothing is saved and every start begins at the
    newest change. `old_cursor` names an old cursor file to migrate into the
    store (see `prepare`).

    Each watcher call runs on a worker thread; one blocked in a host call
    past its deadline (plus a second) is given up and counts as a failed
    attempt. `stop` lets the call in progress finish its change for half a
    second, then cancels it, and gives it up if it is blocked. Up to
    `max_abandoned` given-up calls may still be running (their threads end
    when their host calls return); past that the runner waits for one to
    end before it calls the watcher again.

    Changes the trigger's own deliveries wrote under its prefix are not
    delivered back to it (see `calls`), unless `own_writes` is True.

    With a `lease` (see `lease`), several processes run the trigger and take
    turns: the runner delivers only while the lease is valid, reads the
    saved position each time it gets the lease, claims each batch in the
    store before delivering it (`Store.save_fenced`) and saves with its
    token, so that a process that lost the lease can neither deliver past
    its term's end nor move the position. After a takeover, the changes the
    previous holder had claimed (one batch at most) are delivered again,
    counted in `redelivered` and `takeovers`.
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
        own_writes: bool = False,
        max_abandoned: int = MAX_ABANDONED,
        lease: Lease | None = None,
    ) -> None:
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if max_abandoned < 1:
            raise ValueError("max_abandoned must be at least 1")
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
        self.max_abandoned = max_abandoned
        #: The seqs of changes this trigger's deliveries wrote, skipped once
        #: (None: own writes are delivered like any other).
        self.own_writes = None if own_writes else OwnWrites(prefix)
        self._pool: WorkerPool | None = None
        self._waiting_logged = False
        self._stopping = threading.Event()
        # A drain's end (monotonic): until then, the batch in progress at a stop may run on.
        self._finish_by: float | None = None
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
        #: Own writes skipped, and watcher calls given up (blocked in a host call).
        self.skipped_own = 0
        self.abandoned = 0
        #: The lease this runner delivers under (None: it alone reads the feed),
        #: the token of its current term, and the takeovers and changes
        #: delivered again after them.
        self.lease = lease
        self._term: int | None = None
        self._taken_over: LeaseState | None = None
        self._redeliver_through = 0
        self.takeovers = 0
        self.redelivered = 0

    def use(self, watcher: WatcherComponent) -> None:
        """Deliver to `watcher` (a new version of this runner's component, on the same store) from now on.

        The attempt in progress, if any, finishes on the old one: each
        attempt reads `self.watcher` once, when it begins.
        """
        if watcher.name != self.watcher.name or watcher.store is not self.store:
            raise ValueError(f"{watcher.name!r} on {watcher.store_label!r} is not a version of {self.name}")
        self.watcher = watcher

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

    @property
    def blocked_calls(self) -> int:
        """Given-up watcher calls still blocked in their host calls."""
        return 0 if self._pool is None else self._pool.written_off

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
            except CorruptPosition as exc:
                raise ConfigError(f"watch trigger {self.name}: {exc}") from None
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

    @property
    def delivering(self) -> bool:
        """Whether this runner delivers now: it has no lease, or holds it in a started term."""
        if self.lease is None:
            return self._started
        return self._term is not None and self._term == self.lease.token

    def start(self) -> None:
        """Fix the starting cursor and start the thread.

        If the store cannot be reached now, the thread keeps trying, and a
        trigger without a saved position starts at the newest change of the
        moment the store answers. Raises `ConfigError` if an old cursor file
        or the saved position cannot be used (see `prepare`).
        """
        if self._thread is not None:
            raise RuntimeError(f"watch runner {self.name} was already started")
        self.prepare()
        try:
            if self.lease is None:
                self._begin()
            elif self.lease.acquire():
                self._start_term()
        except StoreError as exc:
            log.error("watch runner %s: cannot read the change feed yet: %s", self.name, exc)
        self._pool = WorkerPool(1, 1, max_written_off=self.max_abandoned, name=f"wasikv-watcher {self.name}")
        self._thread = threading.Thread(target=self._run, name=f"wasikv-watch {self.name}", daemon=True)
        self._thread.start()

    def save_start(self) -> None:
        """Fix the starting cursor and save it as the trigger's position, without starting.

        For a runner that another process will start: changes written from
        now on are delivered even if they come before it starts. With a
        lease, this takes the lease for the moment and lets it go again; a
        lease held elsewhere means a process is delivering already, from the
        position it holds, and nothing is saved. Raises `StoreError` when the
        store cannot be reached.
        """
        self.prepare()
        if self.lease is None:
            self._begin()
            return
        if not self.lease.acquire():
            return
        try:
            self._start_term(quiet=True)
        finally:
            self._term = None
            self.lease.release()

    def request_stop(self, finish_by: float | None = None) -> None:
        """Ask the thread to stop after the current delivery, without waiting (see `stop`).

        With `finish_by` (a `time.monotonic()` time: a drain), the batch in
        progress may run on until then rather than only its change in
        progress; then the stop goes on as `stop` says.
        """
        if finish_by is not None:
            self._finish_by = finish_by
        self._stopping.set()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop within about a second (even with a watcher blocked in a host call), save the position.

        After `request_stop(finish_by)`, within about a second of `finish_by`.
        """
        self._stopping.set()
        if timeout is not None and self._finish_by is not None:
            timeout = max(timeout, self._finish_by - time.monotonic() + _STOP_GRACE + _CANCEL_GRACE + 1.0)
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
        grant, self._taken_over = self._taken_over, None
        if grant is not None:
            self._count_takeover(grant)

    def _start_term(self, *, quiet: bool = False) -> None:
        """Begin delivering under the lease just acquired: from the saved position, counting a takeover.

        If the store fails here, the thread calls `_begin` again later, and
        the takeover is counted then.
        """
        lease = self.lease
        assert lease is not None and lease.grant is not None
        grant = lease.grant
        self._term = lease.token
        self._saved = None
        self._started = False
        if self.own_writes is not None:
            self.own_writes = type(self.own_writes)(self.prefix)  # the last term's are its own
        taken_over = bool(grant.holder) and grant.holder != lease.holder and not quiet
        self._taken_over = grant if taken_over else None
        self._begin()

    def _count_takeover(self, grant: LeaseState) -> None:
        """Count and log a takeover; the changes the last holder claimed are delivered again."""
        assert self.lease is not None
        self.takeovers += 1
        if grant.claimed > self._cursor:
            self._redeliver_through = grant.claimed
            delivery_log.warning(
                "watch runner %s: took over from %s (token %d) at position %d; it had claimed changes "
                "through seq %d, which are delivered again (the one batch it may have been delivering)",
                self.name,
                grant.holder,
                grant.token,
                self._cursor,
                grant.claimed,
            )
        else:
            delivery_log.info(
                "watch runner %s: took over from %s (token %d) at position %d; nothing was in flight",
                self.name,
                grant.holder,
                grant.token,
                self._cursor,
            )

    def _end_term(self) -> None:
        """Stop delivering: the lease was lost, or is being handed over (then saved and released)."""
        lease = self.lease
        assert lease is not None
        handing_over = lease.yielding and lease.token == self._term
        if handing_over:
            self._save(force=True)
            lease.release(cooldown=True)
            delivery_log.info(
                "watch runner %s: handed its lease over at position %d", self.name, self._cursor
            )
        else:
            log.warning(
                "watch runner %s: stopped delivering at position %d: its lease was lost or could not "
                "be renewed in time",
                self.name,
                self._cursor,
            )
        self._term = None
        self._started = False

    def _halt(self) -> bool:
        """Whether to stop delivering now: the runner is stopping, or its lease may have run out."""
        return self._stopping.is_set() or (self.lease is not None and not self.lease.valid())

    def _hold(self) -> bool:
        """With a lease: wait until it is held and valid, beginning a term; False while it is not."""
        lease = self.lease
        if lease is None:
            return True
        if self._term is not None and (lease.token != self._term or lease.yielding):
            self._end_term()  # lost (another process took it), or to be handed over
        elif lease.yielding:
            lease.release(cooldown=True)  # to be handed over before this runner began delivering
        if not lease.valid():
            lease.wait(_MAX_NOTIFY_WAIT)
            return False
        if self._term is None:
            self._start_term()
        return True

    def _initial_cursor(self) -> int:
        last = self.store.last_change()
        if self.position is None:
            return last
        try:
            saved = self.store.load_position(self.position)
        except CorruptPosition as exc:
            # Never guessed: resuming elsewhere would skip or replay changes.
            raise ConfigError(f"watch trigger {self.name}: {exc}") from None
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
                    if not self._hold():
                        continue
                    if not self._started:
                        self._begin()
                    batch = self.store.changes(self._cursor, self.batch_size)
                except (StoreError, ConfigError) as exc:
                    now = time.monotonic()
                    if failing_since is None or now - last_logged >= _STORE_LOG_INTERVAL:
                        if isinstance(exc, ConfigError):  # a corrupt position, found once the store answered
                            log.error("%s", exc)
                        else:
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
                if not self._handle(batch) and self._stopping.is_set():
                    return
        except BaseException:
            log.exception("watch runner %s stopped by an unexpected error", self.name)
            raise
        finally:
            if self._started and (self.lease is None or self._term is not None):
                self._save(force=True)
            if self.lease is not None and self._term is not None and self.lease.token == self._term:
                self.lease.release()
                self._term = None
            if self._pool is not None:
                self._pool.shutdown(timeout=0)

    def _idle(self) -> None:
        if self.store.change_notifications:
            try:
                self.store.wait_for_change(self._cursor, _MAX_NOTIFY_WAIT)
            except StoreError:
                self._stopping.wait(self.poll_interval)
        else:
            self._stopping.wait(self.poll_interval)

    def _handle(self, batch: list[Change]) -> bool:
        """Deliver the matching changes of `batch`, and log the delivery; False if stopped part-way."""
        matching = [
            change for change in batch if change.key.startswith(self.prefix) and not self._own(change)
        ]
        if matching:
            if not self._claim(matching[-1].seq):
                return False
            again = sum(1 for change in matching if change.seq <= self._redeliver_through)
            started = time.perf_counter()
            delivered, dropped = self.delivered, self.dropped
            finished = self._deliver(matching)
            if again:
                self.redelivered += again
                self._redeliver_through = 0
            if delivery_log.isEnabledFor(logging.INFO):
                delivered, dropped = self.delivered - delivered, self.dropped - dropped
                if not finished:
                    outcome = f"stopped after {delivered + dropped}"
                else:
                    outcome = f"{dropped} dropped" if dropped else "ok"
                delivery_log.info(
                    "watch %s:%s* -> %s: %d change%s (%s) %s %.1fms",
                    self.watcher.store_label,
                    self.prefix,
                    self.watcher.name,
                    len(matching),
                    "" if len(matching) == 1 else "s",
                    _keys_in_short(matching),
                    outcome,
                    (time.perf_counter() - started) * 1000,
                )
            if not finished:
                return False
        self._advance(batch[-1].seq)
        if self.own_writes is not None:
            self.own_writes.forget_through(batch[-1].seq)
        self._save(force=bool(matching))
        return True

    def _claim(self, through: int) -> bool:
        """With a lease: save the position and claim the batch through `through` before delivering it.

        So that a takeover delivers again at most this batch. False (after a
        pause, if the store failed) when the batch must not be delivered now.
        """
        if self.lease is None or self.position is None or self._term is None:
            return self.lease is None or self._term is not None
        try:
            claimed = self.store.save_fenced(self.position, self._term, self._cursor, through)
        except StoreError as exc:
            self._log_save_failure(exc)
            self._stopping.wait(_STORE_RETRY)
            return False
        if not claimed:
            self._fenced_out()
            return False
        self._saved = self._cursor
        return True

    def _fenced_out(self) -> None:
        log.warning(
            "watch runner %s: the store refused its save (token %s): another process holds the lease; "
            "stopped delivering",
            self.name,
            self._term,
        )
        assert self.lease is not None
        if self.lease.token == self._term:
            self.lease.lose()

    def _log_save_failure(self, exc: StoreError) -> None:
        now = time.monotonic()
        if self._save_failed_at is None or now - self._save_failed_at >= _STORE_LOG_INTERVAL:
            log.error("watch runner %s: cannot save its position %d: %s", self.name, self._cursor, exc)
            self._save_failed_at = now

    def _own(self, change: Change) -> bool:
        """Whether `change` was written by one of this trigger's deliveries (then it is skipped)."""
        if self.own_writes is None or not self.own_writes.take(change.seq):
            return False
        self.skipped_own += 1
        log.debug("watch runner %s: skipped its own write of %r (seq %d)", self.name, change.key, change.seq)
        return True

    def _deliver(self, matching: list[Change]) -> bool:
        """Deliver `matching`, retrying and dropping as the policy says; False if stopped part-way."""
        done = 0
        attempts = 0
        waits = 0
        while done < len(matching):
            try:
                delivered = self._attempt(matching[done:])
            except _Stopped as stopped:
                if stopped.delivered:
                    self._advance(matching[done + stopped.delivered - 1].seq, delivered=stopped.delivered)
                return False
            except DeliveryFailed as failure:
                delivered = failure.delivered
                if delivered:
                    attempts = 0
                    self._advance(matching[done + delivered - 1].seq, delivered=delivered)
                    done += delivered
                if self._halt():
                    return False  # interrupted by the stop: not the change's failure
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
            if self._halt() and done < len(matching):
                return False
        return True

    def _attempt(self, changes: list[Change]) -> int:
        """`watcher.deliver(changes)` on the worker thread, given up if it blocks past its deadline.

        Raises `DeliveryFailed` as `deliver` does (also for a call given up),
        and `_Stopped` when the runner was stopped and the call did not end
        in time.
        """
        pool = self._pool
        assert pool is not None, "the runner's thread runs only after start made the pool"
        if self._halt() or not self._room_for_a_call(pool):
            raise _Stopped(0)
        call = DeliveryCall(self.watcher.name, self.own_writes)
        future: Future[int] = pool.submit(partial(self.watcher.deliver, changes, call))
        started = time.monotonic()
        stop_at: float | None = None
        cancelled = False
        while True:
            try:
                return future.result(timeout=_WATCH_INTERVAL)
            except TimeoutError:
                pass
            now = time.monotonic()
            if self._halt():
                if stop_at is None:
                    if self._finish_by is not None and now < self._finish_by:
                        continue  # draining: the batch may finish
                    call.finish()  # the change in progress may end; no more after it
                    stop_at = now + _STOP_GRACE
                elif now >= stop_at and not cancelled:
                    call.cancel()
                    cancelled = True
                    stop_at = now + _CANCEL_GRACE
                elif now >= stop_at and self._give_up(pool, future, call):
                    raise _Stopped(call.delivered)
                continue
            timeout = self.watcher.spec.timeout
            expires = call.expires(started, timeout)
            if expires is not None and now > expires + _BLOCKED_GRACE and self._give_up(pool, future, call):
                left = pool.written_off
                raise DeliveryFailed(
                    f"blocked in a host call past its deadline of {timeout or 0:g} s; given "
                    f"up ({left} given-up call{'' if left == 1 else 's'} of this trigger still blocked)",
                    call.delivered,
                )

    def _give_up(self, pool: WorkerPool, future: Future[int], call: DeliveryCall) -> bool:
        """Abandon `call` to its worker (a fresh worker takes its place); False if it just ended."""
        call.abandon()
        # _room_for_a_call left room for this one, so the pool starts a replacement.
        if future.done() or not pool.write_off(future):
            return False
        self.abandoned += 1
        return True

    def _room_for_a_call(self, pool: WorkerPool) -> bool:
        """Wait while `max_abandoned` given-up calls still block; False if stopped meanwhile."""
        if pool.written_off < self.max_abandoned:
            self._waiting_logged = False
            return True
        if not self._waiting_logged:
            self._waiting_logged = True
            log.error(
                "watcher %s: %d given-up calls are still blocked in host calls (the most a trigger may "
                "leave running); waiting for one to return before calling it again",
                self.watcher.name,
                pool.written_off,
            )
        while pool.written_off >= self.max_abandoned:
            if self._stopping.wait(_WATCH_INTERVAL):
                return False
        log.info("watcher %s: a blocked call returned; delivering again", self.watcher.name)
        self._waiting_logged = False
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
            if self.lease is None:
                self.store.save_position(self.position, self._cursor)
            elif self._term is None:
                return
            elif not self.store.save_fenced(self.position, self._term, self._cursor, self._cursor):
                self._fenced_out()
                return
        except StoreError as exc:
            # The next batch saves again (it claims first); a store that stays
            # down is logged once a minute.
            self._log_save_failure(exc)
            return
        self._saved = self._cursor
        self._save_failed_at = None


# Keys longer than this are cut in the delivery log line.
_KEY_SHOWN = 40


def _keys_in_short(changes: list[Change]) -> str:
    """The keys of `changes` for a log line: up to three listed, more as their range and count."""
    keys = sorted({change.key for change in changes})
    shown = [_short_key(key) for key in keys]
    if len(shown) <= 3:
        return ", ".join(shown)
    return f"{shown[0]} .. {shown[-1]}, {len(shown)} keys"


def _short_key(key: str) -> str:
    # Keys are guest data: escape what would break a log line, and cut long ones.
    text = key if key.isprintable() else repr(key)[1:-1]
    return text if len(text) <= _KEY_SHOWN else text[: _KEY_SHOWN - 1] + "…"


def _what(change: Change) -> str:
    return "on-set" if change.value is not None else "on-delete"
