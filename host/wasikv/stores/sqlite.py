"""A store in one SQLite file, shared safely by threads and processes."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar, Concatenate, ParamSpec, TypeVar
from urllib.parse import quote, unquote

from ..errors import InvalidStoreUrl, StoreError
from . import _shared
from ._url import parse_query, redact
from .base import (
    Change,
    LeaseState,
    Store,
    Versioned,
    add_delta,
    check_item,
    check_key,
    check_position,
    check_position_name,
    format_counter,
    loaded_position,
    parse_counter,
)

_P = ParamSpec("_P")
_T = TypeVar("_T")

SCHEMA_VERSION = 1
_SYNCHRONOUS = ("normal", "full")
_DB_ERRORS = (sqlite3.Error, OSError, UnicodeError)

# A tombstone is a row whose value is NULL; it only carries the version.
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS kv (
        key TEXT PRIMARY KEY NOT NULL,
        value BLOB,
        version INTEGER NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS kv_tombstones ON kv (version) WHERE value IS NULL",
    """CREATE TABLE IF NOT EXISTS meta (
        id INTEGER PRIMARY KEY CHECK (id = 0),
        seq INTEGER NOT NULL,
        watermark INTEGER NOT NULL
    )""",
    "INSERT OR IGNORE INTO meta (id, seq, watermark) VALUES (0, 0, 0)",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)
# The change feed, which is also the store's sequence: every write inserts
# its change first and takes the new row's `seq` (SQLite gives a new
# INTEGER PRIMARY KEY row the largest one plus one) as the key's version, in
# the same transaction, so a rolled-back write leaves no change and numbers
# are consecutive. Sweeps never delete the newest row, so numbers never go
# back. A row with a NULL key only holds the sequence (see `_FEED_FLOOR`).
# `meta.seq` is the sequence of stores written before the feed existed.
_FEED_SCHEMA = """CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY,
    key TEXT,
    value BLOB
)"""
# A store written before the feed existed continues its numbers from meta.seq.
_FEED_FLOOR = (
    "INSERT INTO changes (seq, key, value) SELECT seq, NULL, NULL FROM meta "
    "WHERE seq > (SELECT coalesce(max(seq), 0) FROM changes)"
)
# Where each change-feed reader (a watch trigger) is: the seq of the last
# change it handled. Created on open like the feed, so older stores get it
# without a schema version bump; saving a position is not a change.
_POSITIONS_SCHEMA = """CREATE TABLE IF NOT EXISTS watch_positions (
    name TEXT PRIMARY KEY NOT NULL,
    seq INTEGER NOT NULL
) WITHOUT ROWID"""
# Leases of change-feed readers that take turns (several `wasikv up` on one
# file): expiry by this machine's wall clock (seconds since the epoch), which
# every process on the file shares; created on open like the positions.
_LEASES_SCHEMA = """CREATE TABLE IF NOT EXISTS watch_leases (
    name TEXT PRIMARY KEY NOT NULL,
    token INTEGER NOT NULL,
    holder TEXT NOT NULL,
    expires REAL NOT NULL,
    claimed INTEGER NOT NULL
) WITHOUT ROWID"""
_MEMBERS_SCHEMA = """CREATE TABLE IF NOT EXISTS watch_members (
    grp TEXT NOT NULL,
    member TEXT NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (grp, member)
) WITHOUT ROWID"""
_OWN_OBJECTS = frozenset(
    {"kv", "kv_tombstones", "meta", "changes", "watch_positions", "watch_leases", "watch_members"}
)

_BEGIN = "BEGIN IMMEDIATE"
_BEGIN_READ = "BEGIN"
_COMMIT = "COMMIT"
_ROLLBACK = "ROLLBACK"
_GET = "SELECT value FROM kv WHERE key = ?"
_GET_VERSIONED = "SELECT kv.value, coalesce(kv.version, meta.watermark) FROM meta LEFT JOIN kv ON kv.key = ?"
_CURRENT_VERSION = "SELECT coalesce((SELECT version FROM kv WHERE key = ?), watermark) FROM meta"
_EXISTS = "SELECT 1 FROM kv WHERE key = ? AND value IS NOT NULL"
_LIST_FIRST = "SELECT key FROM kv WHERE value IS NOT NULL ORDER BY key LIMIT ?"
_LIST_AFTER = "SELECT key FROM kv WHERE key > ? AND value IS NOT NULL ORDER BY key LIMIT ?"
# A single write appends its change and reads the new seq from the cursor.
_LOG = "INSERT INTO changes (key, value) VALUES (?, ?)"
_LOG_AT = "INSERT INTO changes (seq, key, value) VALUES (?, ?, ?)"
_PUT_VERSION = (
    "INSERT INTO kv (key, value, version) VALUES (?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version"
)
_SEQ = "SELECT coalesce(max(seq), 0) FROM changes"
_NEWEST_STALE = "SELECT max(version) FROM kv WHERE value IS NULL AND version < ?"
_DROP_STALE = "DELETE FROM kv WHERE value IS NULL AND version <= ?"
_RAISE_WATERMARK = "UPDATE meta SET watermark = max(watermark, ?)"
_CHANGES = "SELECT seq, key, value FROM changes WHERE seq > ? AND key IS NOT NULL ORDER BY seq LIMIT ?"
_DROP_OLD_CHANGES = "DELETE FROM changes WHERE seq <= (SELECT max(seq) FROM changes) - ?"
_LOAD_POSITION = "SELECT seq FROM watch_positions WHERE name = ?"
_SAVE_POSITION = (
    "INSERT INTO watch_positions (name, seq) VALUES (?, ?) "
    "ON CONFLICT (name) DO UPDATE SET seq = excluded.seq"
)
_LEASE = "SELECT token, holder, expires, claimed FROM watch_leases WHERE name = ?"
_TAKE_LEASE = (
    "INSERT INTO watch_leases (name, token, holder, expires, claimed) VALUES (?, ?, ?, ?, 0) "
    "ON CONFLICT (name) DO UPDATE SET token = excluded.token, holder = excluded.holder, "
    "expires = excluded.expires"
)
_RENEW_LEASE = "UPDATE watch_leases SET expires = ? WHERE name = ? AND token = ?"
_RELEASE_LEASE = "UPDATE watch_leases SET expires = 0, holder = '' WHERE name = ? AND token = ?"
_CLAIM = "UPDATE watch_leases SET claimed = ? WHERE name = ? AND token = ?"
_JOIN = (
    "INSERT INTO watch_members (grp, member, expires) VALUES (?, ?, ?) "
    "ON CONFLICT (grp, member) DO UPDATE SET expires = excluded.expires"
)
_DROP_MEMBERS = "DELETE FROM watch_members WHERE grp = ? AND expires <= ?"
_MEMBERS = "SELECT count(*) FROM watch_members WHERE grp = ?"


class SqliteStore(Store):
    """A store in a SQLite file (WAL mode), one connection per thread.

    Every write runs in a `BEGIN IMMEDIATE` transaction, so increments and
    swaps are atomic across threads and across processes sharing the file.
    With `synchronous="normal"` acknowledged writes survive the process being
    killed; only a power loss can drop the last commits. `synchronous="full"`
    makes them survive power loss too, at the cost of an fsync per write.

    Every write also appends to the change feed (`changes`) in the same
    transaction. The feed keeps at least the newest `change_window` changes:
    older ones are swept every 1000 write transactions of this process and
    when a store is opened. Each change holds a copy of the value written.
    Change-feed readers keep their positions in the same file
    (`load_position`/`save_position`), so they go wherever the feed goes.

    The store remembers which file it opened (its device and inode). Once
    the path no longer leads to that file (deleted, or another file moved
    over it), every read and write fails with a `StoreError` naming the
    file: the connections still hold the old file, and what they wrote into
    it would vanish when they close. Writes check inside their transaction,
    so none is acknowledged into a file the path has lost.
    """

    atomic_batches: ClassVar[bool] = True
    keeps_positions: ClassVar[bool] = True
    durable: ClassVar[bool] = True
    cross_process: ClassVar[bool] = True
    #: How often, at most, a read makes sure the path still leads to the
    #: store's file (seconds); every write makes sure first.
    read_check_interval: float = 0.5
    has_change_feed: ClassVar[bool] = True
    has_leases: ClassVar[bool] = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        url: str | None = None,
        busy_timeout_ms: int = 5000,
        synchronous: str = "normal",
        tombstone_window: int = _shared.DEFAULT_TOMBSTONE_WINDOW,
        change_window: int = _shared.DEFAULT_CHANGE_WINDOW,
    ) -> None:
        path = os.fspath(path)
        if path in ("", ":memory:"):
            raise ValueError(f"sqlite store needs a file path, not {path!r} (use the memory store)")
        if synchronous.lower() not in _SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {', '.join(_SYNCHRONOUS)}, not {synchronous!r}")
        if busy_timeout_ms < 0:
            raise ValueError("busy_timeout_ms must not be negative")
        _shared.check_windows(tombstone_window, change_window)
        self.path = os.path.abspath(path)
        self.url = redact(url) if url is not None else f"sqlite:{self.path}"
        self.busy_timeout_ms = busy_timeout_ms
        self.synchronous = synchronous.lower()
        self._window = tombstone_window
        self._prune_every = _shared.prune_every(tombstone_window)
        self._deletes = 0
        self._change_window = change_window
        self._sweep_changes_every = _shared.prune_every(change_window)
        # Counted per process without a lock: a lost update only delays a sweep.
        self._writes = 0
        self._local = threading.local()
        self._connections: list[tuple[sqlite3.Connection, threading.RLock]] = []
        self._connections_lock = threading.Lock()
        self._closed = False
        # (st_dev, st_ino) of the file the first connection opened.
        self._identity: tuple[int, int] | None = None
        # When the path was last found to lead to that file (monotonic);
        # -inf forces the next read to look again.
        self._file_seen_at = float("-inf")
        try:
            self._initialize()
        except BaseException:
            self.close()
            raise

    # -- reads -----------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        """The value of `key`, or None when it does not exist."""
        try:
            with self._use() as conn:
                row = conn.execute(_GET, (key,)).fetchone()
        except _DB_ERRORS as exc:
            raise self._error(exc) from exc
        return None if row is None else row[0]

    def get_versioned(self, key: str) -> Versioned:
        """The value of `key` and its version (the watermark for unknown keys)."""
        try:
            with self._use() as conn:
                value, version = conn.execute(_GET_VERSIONED, (key,)).fetchone()
        except _DB_ERRORS as exc:
            raise self._error(exc) from exc
        return Versioned(value, version)

    def exists(self, key: str) -> bool:
        """Whether `key` exists (an empty value exists)."""
        try:
            with self._use() as conn:
                row = conn.execute(_EXISTS, (key,)).fetchone()
        except _DB_ERRORS as exc:
            raise self._error(exc) from exc
        return row is not None

    def list_keys(self, after: str | None, limit: int) -> list[str]:
        """Up to `limit` keys greater than `after`, in code-point order."""
        if limit <= 0:
            # SQLite reads a negative LIMIT as "no limit".
            return []
        try:
            with self._use() as conn:
                if after is None:
                    rows = conn.execute(_LIST_FIRST, (limit,)).fetchall()
                else:
                    rows = conn.execute(_LIST_AFTER, (after, limit)).fetchall()
        except _DB_ERRORS as exc:
            raise self._error(exc) from exc
        return [row[0] for row in rows]

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values of `keys`, in request order, read from one snapshot."""
        try:
            with self._use() as conn:
                conn.execute(_BEGIN_READ)
                try:
                    rows = [conn.execute(_GET, (key,)).fetchone() for key in keys]
                    conn.execute(_COMMIT)
                except BaseException:
                    _rollback(conn)
                    raise
        except _DB_ERRORS as exc:
            raise self._error(exc) from exc
        return [None if row is None else row[0] for row in rows]

    # -- writes ----------------------------------------------------------

    def set(self, key: str, value: bytes) -> None:
        """Create or replace `key`."""
        check_item("sqlite", key, value)
        self._write(_put, key, value)

    def delete(self, key: str) -> None:
        """Remove `key`, leaving a tombstone; a missing key is not an error."""
        check_key("sqlite", key)
        self._write(self._delete_keys, (key,))

    def increment(self, key: str, delta: int) -> int:
        """Add `delta` to the decimal counter at `key` and return the result."""
        check_key("sqlite", key)
        return self._write(_increment, key, delta)

    def swap(self, key: str, version: int, value: bytes) -> bool:
        """Set `key` to `value` only if its version is still `version`."""
        check_item("sqlite", key, value)
        return self._write(_swap, key, version, value)

    def set_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Set every pair in one transaction; a later duplicate key wins."""
        for key, value in items:
            check_item("sqlite", key, value)
        if items:
            self._write(_put_many, items)

    def delete_many(self, keys: Sequence[str]) -> None:
        """Delete every key in one transaction."""
        for key in keys:
            check_key("sqlite", key)
        if keys:
            self._write(self._delete_keys, keys)

    # -- change feed -----------------------------------------------------

    def changes(self, after: int, limit: int) -> list[Change]:
        """Up to `limit` retained changes with `seq > after`, oldest first.

        Writers commit in `seq` order (each holds the write lock while it
        takes its numbers), so a read never sees a later change without the
        earlier ones.
        """
        if limit <= 0:
            return []
        try:
            with self._use() as conn:
                rows = conn.execute(_CHANGES, (after, limit)).fetchall()
        except _DB_ERRORS as exc:
            raise self._error(exc) from exc
        return [Change(seq, key, value) for seq, key, value in rows]

    def last_change(self) -> int:
        """The seq of the newest committed write (0 before the first)."""
        try:
            with self._use() as conn:
                (seq,) = conn.execute(_SEQ).fetchone()
        except _DB_ERRORS as exc:
            raise self._error(exc) from exc
        return int(seq)

    # -- change-feed positions -------------------------------------------

    def load_position(self, name: str) -> int | None:
        """The saved position of the change-feed reader `name`; None if it never saved one."""
        check_position_name("sqlite", name)
        try:
            with self._use() as conn:
                row = conn.execute(_LOAD_POSITION, (name,)).fetchone()
        except _DB_ERRORS as exc:
            raise self._error(exc) from exc
        if row is None:
            return None
        # SQLite keeps what it is given (text, a blob) even in an INTEGER column.
        literal = "'" + name.replace("'", "''") + "'"
        return loaded_position(
            f"sqlite store {self.path}",
            name,
            row[0],
            f"in `sqlite3 {self.path}`, run DELETE FROM watch_positions WHERE name = {literal};",
        )

    def save_position(self, name: str, seq: int) -> None:
        """Save `seq` as the position of `name`, in a transaction of its own (not a change)."""
        check_position("sqlite", name, seq)
        self._write(_save_position, name, seq)

    # -- leases (see `Store.acquire_lease`): each one write transaction ----

    def acquire_lease(self, name: str, holder: str, seconds: float) -> LeaseState:
        """Take the lease `name` for `seconds` unless another holder's has not expired."""
        ms = _shared.check_lease("sqlite", name, seconds)
        _shared.check_holder("sqlite", holder)
        return self._write(_acquire_lease, name, holder, ms / 1000)

    def renew_lease(self, name: str, holder: str, token: int, seconds: float) -> bool:
        """Extend the lease if `token` is still its newest."""
        ms = _shared.check_lease("sqlite", name, seconds)
        _shared.check_token("sqlite", token)
        return self._write(_changed, _RENEW_LEASE, (time.time() + ms / 1000, name, token))

    def release_lease(self, name: str, token: int) -> None:
        """Expire the lease now if `token` is still its newest."""
        check_position_name("sqlite", name)
        _shared.check_token("sqlite", token)
        self._write(_changed, _RELEASE_LEASE, (name, token))

    def save_fenced(self, name: str, token: int, seq: int, claimed: int) -> bool:
        """Save the position and the claim in one transaction, only if `token` is the lease's newest."""
        check_position("sqlite", name, seq)
        check_position("sqlite", name, claimed)
        _shared.check_token("sqlite", token)
        return self._write(_save_fenced, name, token, seq, claimed)

    def lease_members(self, group: str, member: str, seconds: float) -> int:
        """Record `member` alive for `seconds`; the members alive now."""
        ms = _shared.check_lease("sqlite", group, seconds)
        _shared.check_holder("sqlite", member)
        return self._write(_lease_members, group, member, ms / 1000)

    def close(self) -> None:
        """Close every connection any thread opened; later calls fail."""
        with self._connections_lock:
            self._closed = True
            connections, self._connections = self._connections, []
        if connections and self._file_lost():
            self._empty_wal(*connections[0])
        for conn, lock in connections:
            # Never under a thread still using it: sqlite3 may crash on a
            # connection closed in the middle of a statement.
            with lock:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass

    # -- internals -------------------------------------------------------

    @contextmanager
    def _use(self, *, check_file: bool = True) -> Iterator[sqlite3.Connection]:
        """This thread's connection, held so that `close` cannot close it under a statement.

        With `check_file`, first make sure the path still leads to the file
        the store opened (`_write` checks inside its transaction instead).
        """
        entry: tuple[sqlite3.Connection, threading.RLock] | None = getattr(self._local, "entry", None)
        if entry is None:
            entry = self._open_connection()
        conn, lock = entry
        with lock:
            if self._closed:
                raise _shared.closed(f"sqlite store {self.path}")
            if check_file and time.monotonic() - self._file_seen_at >= self.read_check_interval:
                self._check_file()
            yield conn

    def _check_file(self) -> None:
        """Raise `StoreError` unless `self.path` is still the file the store opened.

        One stat(2): 3-5 µs measured. Every write pays it (beside the
        80-140 µs of a write with synchronous=normal): no write may be
        acknowledged into a file no path leads to. Reads (15-30 µs) look at
        most every `read_check_interval`: a read of a lost file loses
        nothing, and a stat per read cost them 15-30 % in `make bench`.
        """
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            self._file_seen_at = float("-inf")
            raise self._lost("was deleted") from None
        except OSError as exc:
            self._file_seen_at = float("-inf")
            raise self._lost(f"cannot be checked ({exc.strerror or exc})") from None
        if (info.st_dev, info.st_ino) != self._identity:
            self._file_seen_at = float("-inf")
            raise self._lost("was replaced by another file")
        self._file_seen_at = time.monotonic()

    def _file_lost(self) -> bool:
        try:
            self._check_file()
        except StoreError:
            return True
        return False

    def _empty_wal(self, conn: sqlite3.Connection, lock: threading.RLock) -> None:
        """Move the WAL's changes into the lost file and empty the WAL, before closing.

        SQLite does not checkpoint a moved or deleted database when it
        closes, and leaves its WAL at the path, where the next process would
        replay it into whatever file is there now (corrupting a different
        one). Checkpointed, the moved-away file is complete and the WAL empty.
        (A process that opened a new file at the path meanwhile shares that
        WAL with this one: SQLite has no way out of that, so do not.)
        """
        with lock:
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except sqlite3.Error:
                pass  # best effort: the store is closing either way

    def _lost(self, what: str) -> StoreError:
        return StoreError(
            f"sqlite store {self.path}: the database file {what} while this process had it open; "
            "refusing to read or write it, since what is written to a file no path leads to is lost "
            "when it closes. Restart wasikv to open the file now at that path"
        )

    def _open_connection(self) -> tuple[sqlite3.Connection, threading.RLock]:
        if self._closed:
            raise _shared.closed(f"sqlite store {self.path}")
        target, uri = self.path, False
        if self._identity is not None:
            # A later connection must open the store's file, never create one.
            self._check_file()
            target, uri = f"file:{quote(self.path)}?mode=rw", True
        conn = sqlite3.connect(
            target,
            timeout=self.busy_timeout_ms / 1000,
            isolation_level=None,
            # close() runs on whichever thread shuts the store down.
            check_same_thread=False,
            uri=uri,
        )
        try:
            conn.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")
            # sqlite3.connect has opened (or created) the file: remember it,
            # or refuse a connection that opened a file other than the first.
            if self._identity is None:
                info = os.stat(self.path)
                self._identity = (info.st_dev, info.st_ino)
            else:
                self._check_file()
        except BaseException:
            conn.close()
            raise
        entry = (conn, threading.RLock())
        with self._connections_lock:
            if self._closed:
                conn.close()
                raise _shared.closed(f"sqlite store {self.path}")
            self._connections.append(entry)
        self._local.entry = entry
        return entry

    def _initialize(self) -> None:
        parent = os.path.dirname(self.path)
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"sqlite store {self.path}: cannot create directory {parent}: {exc.strerror or exc}"
            ) from exc
        if os.path.isdir(self.path):
            raise StoreError(f"sqlite store {self.path}: is a directory, not a database file")
        try:
            with self._use(check_file=False) as conn:
                mode = self._enter_wal_mode(conn)
                if mode.lower() != "wal":
                    raise StoreError(f"sqlite store {self.path}: cannot use WAL journal mode (got {mode})")
                self._write(self._create_schema)
        except _DB_ERRORS as exc:
            raise self._error(exc) from exc

    def _enter_wal_mode(self, conn: sqlite3.Connection) -> str:
        """Switch the database to WAL (a no-op once it is); returns the journal mode now."""
        # Switching a new database takes an exclusive lock, and SQLite
        # answers "database is locked" at once, without waiting busy_timeout,
        # when other processes open the same new file at that moment (seen
        # with 6 processes: 7 of 240 opens failed). Wait as the busy handler
        # would.
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        while True:
            try:
                (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
                return str(mode)
            except sqlite3.OperationalError as exc:
                busy = exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY
                if not busy or time.monotonic() >= deadline:
                    raise
            time.sleep(0.005)

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version != SCHEMA_VERSION:
            self._create_tables(conn, version)
        conn.execute(_FEED_SCHEMA)
        conn.execute(_FEED_FLOOR)
        conn.execute(_POSITIONS_SCHEMA)
        conn.execute(_LEASES_SCHEMA)
        conn.execute(_MEMBERS_SCHEMA)
        # Processes that only ever write a little (`wasikv kv`) sweep here.
        conn.execute(_DROP_OLD_CHANGES, (self._change_window,))

    def _create_tables(self, conn: sqlite3.Connection, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"sqlite store {self.path}: schema version {version} is newer than this wasikv "
                f"supports ({SCHEMA_VERSION})"
            )
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_schema")}
        if names - _OWN_OBJECTS:
            # Never scribble over somebody else's database.
            raise StoreError(
                f"sqlite store {self.path}: not a wasikv store (it has tables {', '.join(sorted(names))})"
            )
        for statement in _SCHEMA:
            conn.execute(statement)

    def _write(
        self,
        body: Callable[Concatenate[sqlite3.Connection, _P], _T],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        """Run `body` in a write transaction, rolling back on any failure."""
        try:
            with self._use(check_file=False) as conn:
                conn.execute(_BEGIN)
                try:
                    # Under the write lock, so no write is acknowledged into
                    # a file deleted while this one waited for the lock.
                    self._check_file()
                    result = body(conn, *args, **kwargs)
                    self._writes += 1
                    if self._writes >= self._sweep_changes_every:
                        self._writes = 0
                        conn.execute(_DROP_OLD_CHANGES, (self._change_window,))
                    conn.execute(_COMMIT)
                except BaseException:
                    _rollback(conn)
                    raise
        except _DB_ERRORS as exc:
            raise self._error(exc) from exc
        return result

    def _delete_keys(self, conn: sqlite3.Connection, keys: Sequence[str]) -> None:
        if len(keys) == 1:
            _put(conn, keys[0], None)
        else:
            _put_many(conn, [(key, None) for key in keys])
        # Counted per process; several processes just sweep a little more often.
        self._deletes += len(keys)
        if self._deletes >= self._prune_every:
            self._deletes = 0
            self._prune(conn)

    def _prune(self, conn: sqlite3.Connection) -> None:
        (seq,) = conn.execute(_SEQ).fetchone()
        (newest,) = conn.execute(_NEWEST_STALE, (seq - self._window,)).fetchone()
        if newest is None:
            return
        conn.execute(_DROP_STALE, (newest,))
        # Keys without a row now report the newest pruned version, so a handle
        # pinned to any pruned tombstone (or to an older watermark) conflicts.
        conn.execute(_RAISE_WATERMARK, (newest,))

    def _error(self, exc: BaseException) -> StoreError:
        if isinstance(exc, StoreError):
            return exc
        if isinstance(exc, OSError) and exc.strerror:
            detail = exc.strerror
        else:
            detail = str(exc) or type(exc).__name__
        return StoreError(f"sqlite store {self.path}: {detail}")


def _put(conn: sqlite3.Connection, key: str, value: bytes | None) -> None:
    seq = conn.execute(_LOG, (key, value)).lastrowid
    conn.execute(_PUT_VERSION, (key, value, seq))


def _put_many(conn: sqlite3.Connection, items: Sequence[tuple[str, bytes | None]]) -> None:
    (last,) = conn.execute(_SEQ).fetchone()
    rows = [(last + 1 + i, key, value) for i, (key, value) in enumerate(items)]
    conn.executemany(_LOG_AT, rows)
    conn.executemany(_PUT_VERSION, [(key, value, seq) for seq, key, value in rows])


def _increment(conn: sqlite3.Connection, key: str, delta: int) -> int:
    row = conn.execute(_GET, (key,)).fetchone()
    new = add_delta(key, parse_counter(key, None if row is None else row[0]), delta)
    _put(conn, key, format_counter(new))
    return new


def _swap(conn: sqlite3.Connection, key: str, version: int, value: bytes) -> bool:
    (current,) = conn.execute(_CURRENT_VERSION, (key,)).fetchone()
    if current != version:
        return False
    _put(conn, key, value)
    return True


def _save_position(conn: sqlite3.Connection, name: str, seq: int) -> None:
    conn.execute(_SAVE_POSITION, (name, seq))


def _acquire_lease(conn: sqlite3.Connection, name: str, holder: str, seconds: float) -> LeaseState:
    now = time.time()
    row = conn.execute(_LEASE, (name,)).fetchone()
    token, last, expires, claimed = row if row is not None else (0, "", 0.0, 0)
    if expires > now:
        return LeaseState(False, token, last, claimed)
    conn.execute(_TAKE_LEASE, (name, token + 1, holder, now + seconds))
    return LeaseState(True, token + 1, last, claimed)


def _changed(conn: sqlite3.Connection, statement: str, parameters: tuple[object, ...]) -> bool:
    return conn.execute(statement, parameters).rowcount > 0


def _save_fenced(conn: sqlite3.Connection, name: str, token: int, seq: int, claimed: int) -> bool:
    if conn.execute(_CLAIM, (claimed, name, token)).rowcount == 0:
        return False
    conn.execute(_SAVE_POSITION, (name, seq))
    return True


def _lease_members(conn: sqlite3.Connection, group: str, member: str, seconds: float) -> int:
    now = time.time()
    conn.execute(_JOIN, (group, member, now + seconds))
    conn.execute(_DROP_MEMBERS, (group, now))
    (count,) = conn.execute(_MEMBERS, (group,)).fetchone()
    return int(count)


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        try:
            conn.execute(_ROLLBACK)
        except sqlite3.Error:
            # The original failure matters more; SQLite may have rolled back already.
            pass


def url_for_path(path: Path) -> str:
    """The store URL of a SQLite file (absolute, percent-encoded so any file name works)."""
    return "sqlite://" + quote(os.path.abspath(path), safe="/")


def config_url(label: str, table: Mapping[str, object], base: Path, state_dir: Path) -> str:
    """`type = "sqlite"` (or Spin's "spin"): `path` relative to the config, else `STATE_DIR/LABEL.db`."""
    raw = table.get("path")
    if raw is None:
        return url_for_path(state_dir / f"{quote(label, safe='')}.db")
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError("'path' must be a non-empty string: the SQLite file, relative to this file")
    if raw.endswith(("/", os.sep)):
        raise ValueError(
            f"'path' {raw!r} names a directory; name the database file, as in \"data/{label}.db\""
        )
    return url_for_path(base / raw)


def path_of_url(url: str) -> str:
    """The absolute path of the file `sqlite:PATH` or `sqlite:///ABS/PATH` names; `InvalidStoreUrl` if none.

    Nothing is opened or created, so callers can check that a store exists first.
    """
    return os.path.abspath(_split_url(url)[0])


def _split_url(url: str) -> tuple[str, str]:
    shown = redact(url)
    rest = url.partition(":")[2]
    raw_path, _, query = rest.partition("?")
    if raw_path.startswith("//"):
        authority, slash, raw_path = raw_path[2:].partition("/")
        if authority or not slash:
            raise InvalidStoreUrl(
                f"store URL {shown!r}: a sqlite URL with '//' needs an absolute path (sqlite:///path/to/file.db)"
            )
        raw_path = "/" + raw_path
    try:
        path = unquote(raw_path, errors="strict")
    except UnicodeDecodeError:
        raise InvalidStoreUrl(f"store URL {shown!r}: the path is not valid percent-encoded UTF-8") from None
    if path in ("", "/") or path.endswith("/"):
        raise InvalidStoreUrl(
            f"store URL {shown!r} names no database file (sqlite:PATH or sqlite:///ABSOLUTE/PATH)"
        )
    if path == ":memory:":
        raise InvalidStoreUrl(f"store URL {shown!r}: use 'memory:' for an in-memory store")
    return path, query


def open_url(url: str, *, label: str | None = None) -> SqliteStore:
    """Open `sqlite:PATH` or `sqlite:///ABSOLUTE/PATH`, with `?busy_timeout=MS&synchronous=normal|full`."""
    path, query = _split_url(url)
    shown = redact(url)
    options = parse_query(url, query, ("busy_timeout", "synchronous"))
    timeout_text = options.get("busy_timeout", "5000")
    if not (timeout_text.isascii() and timeout_text.isdigit() and int(timeout_text) < 2**31):
        raise InvalidStoreUrl(
            f"store URL {shown!r}: busy_timeout must be a whole number of milliseconds "
            f"below 2**31, not {timeout_text!r}"
        )
    synchronous = options.get("synchronous", "normal").lower()
    if synchronous not in ("normal", "full"):
        raise InvalidStoreUrl(
            f"store URL {shown!r}: synchronous must be 'normal' or 'full', not {options['synchronous']!r}"
        )
    return SqliteStore(path, url=url, busy_timeout_ms=int(timeout_text), synchronous=synchronous)
