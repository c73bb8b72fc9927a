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
