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
  moves on. Running past the call's deadline is a failure too, also when
  the guest is blocked in a host call that epochs cannot stop (a WASI
  clock wait, an outbound request that never answers): calls run on a
  worker thread, and one still running a second past its deadline is given
  up (`calls.DeliveryCall`). Its thread ends when the host call returns; it
  delivers nothing more and its writes to the watched store are refused. A
  trigger leaves at most `MAX_ABANDONED` (8) such calls running (each keeps
  its instance's memory); past that it waits for one to return, with one
  log line. Stopping gives the call in progress half a second, then
  cancels it and gives it up if it is blocked: a stop never waits for a
  guest. A value larger than the host's `max_value_bytes` cannot be
  passed to a guest and is dropped at once, with a log line. When no
  instance can be created at all (the host's instance pool is full), the
  runner waits (50 ms doubling up to 2 s) and tries again for as long as it
  takes: that is never a reason to drop a change.
- *Several processes*: every process running the app (each `wasikv up`
  host, each `--processes` child) runs every trigger, and they take turns
  through a lease per trigger kept in the watched store (`lease`): only
  the holder delivers, only the newest fencing token saves the position,
  and each batch is claimed before it is delivered, so a takeover delivers
  at most that one batch again (logged, counted in `redelivered`). Leases
  spread over the processes; see docs/guides/several-machines.md.
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

*Own writes*: what a trigger's deliveries write under its prefix in the
watched store is not delivered back to that trigger (other triggers, and
every other writer's changes, are delivered as always), so a watcher that
rewrites the key it is told about does not feed itself. Which changes are
its own is exact: see `calls`; when it cannot be told (another writer
wrote the same bytes to the same key at that moment) the change is
delivered. The runner remembers at most `calls.MAX_OWN_WRITES` of them
until it passes them; after a restart, own writes the runner had not
reached yet are delivered once. `own_writes=True` (`WatchRunner`,
`WatchTriggers.from_app`) delivers them like any other change.

*Positions that cannot be used*: a saved position that is not an int from
0 to 2**63-1 (text, a blob, a negative number: written around wasikv) is
never guessed around: the trigger refuses to start (`ConfigError`, one
line naming the store, the position, what it holds and how to delete it),
on every backend.
"""

from __future__ import annotations

from .app import WATCH_RUNTIME, WatchTriggers
from .delivery import (
    STORE_ENV,
    WATCH_WORLD,
    WATCHER_FUNCTIONS,
    WATCHER_INTERFACE,
    WATCHER_INTERFACES,
    DeliveryFailed,
    RetryPolicy,
    WatcherComponent,
)
from .positions import cursor_path, position_name, read_old_cursor
from .runner import WatchRunner

__all__ = [
    "STORE_ENV",
    "WATCHER_FUNCTIONS",
    "WATCHER_INTERFACE",
    "WATCHER_INTERFACES",
    "WATCH_RUNTIME",
    "WATCH_WORLD",
    "DeliveryFailed",
    "RetryPolicy",
    "WatchRunner",
    "WatchTriggers",
    "WatcherComponent",
    "cursor_path",
    "position_name",
    "read_old_cursor",
]
