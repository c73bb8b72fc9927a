"""A store in PostgreSQL, shared by every host, process and machine that uses the same tables.

Table layout
------------
A store lives in one schema (``?schema=``, default ``wasikv``) as a set of
relations whose names start with its table name ``T``: by default
``kv_{label slug}_{hash}`` (``kv_notes_ab5aa97074`` for the label ``notes``;
the hash keeps labels that slug alike apart), or ``?table_prefix=T``. Every
other relation is ``T__{word}``; ``T`` may not contain ``__`` nor end with
``_``, so the relations of two stores never share a name, even when one
name extends the other.

``T``
    The data: ``key bytea`` (UTF-8; ``text`` cannot hold NUL characters),
    ``value bytea`` (NULL in a tombstone), ``version bigint``. Its primary
    key is ``sha256(key)``, a generated column, so keys of any length fit
    (a btree entry holds at most about 2.7 kB); the partial index
    ``T__live`` on the first 1024 bytes of live keys serves `list_keys`,
    which orders by ``(prefix, key)``: bytes order, which for UTF-8 is
    code-point order, the order of the other stores.
``T__changes``
    The change feed: ``seq bigint`` (primary key), ``key``, ``value`` (NULL
    for a delete), one row per committed write.
``T__positions``
    Change-feed reader name (UTF-8 bytes) -> the seq of the last change it
    handled (`load_position`, `save_position`): not a key, not a change.
``T__meta``
    One row: ``seq`` (the store's sequence: the newest version handed
    out), ``watermark`` (the version of every key without a row) and
    ``layout`` (this module's table layout, 1).

Opening a store creates what is missing (``CREATE SCHEMA``/``TABLE ... IF
NOT EXISTS``) in one transaction under an advisory lock, so processes that
open the same store at once do not trip over each other; a store whose
tables all exist creates nothing, so a role without ``CREATE`` can use
tables an administrator made.

Why a transaction and a sequence row give SQLite's semantics
------------------------------------------------------------
Every write (set, delete, increment, successful swap, set-many,
delete-many) starts by updating the ``T__meta`` row (``seq = seq + n``,
returning the new numbers) and, in the same transaction, writes its rows
of ``T`` and ``T__changes`` with those numbers as versions and seqs. The row
lock on ``T__meta`` is held until the commit, so writers of one store run
one at a time, as under SQLite's ``BEGIN IMMEDIATE``:

- numbers are consecutive and commit in order: a rolled-back write rolls
  its increment of ``seq`` back too (a PostgreSQL ``SEQUENCE`` would leave
  a gap, and hands out numbers in another order than commits), and a write
  cannot commit before the one holding the lock, so a reader never sees a
  change without the ones before it;
- `swap` and `increment` read the key in a statement after the one that
  took the lock; in READ COMMITTED each statement sees everything committed
  before it started, which is every earlier write of the store, so the
  compare and the write cannot interleave with another writer;
- a write with identical bytes still gets a new version (ABA is detected),
  and a delete leaves a tombstone carrying its version, so a `swap` pinned
  before the delete fails. Tombstones older than ``tombstone_window``
  writes are pruned every 1000 deletes of a process (fewer with a smaller
  window), in the transaction of a delete; the newest pruned version
  becomes the watermark in the same transaction, so a handle pinned to a
  pruned tombstone (or to an older watermark) still conflicts.

Sets and deletes are one statement each (the ``T__meta`` update, the
change rows and the upserts as data-modifying CTEs), so one round trip and
one transaction. The feed keeps at least the newest ``change_window``
changes: older ones are swept every 1000 write transactions of a process
and when a store is opened.

NOTIFY
------
Every write calls ``pg_notify`` on the store's channel (``wasikv_{hash}``,
named after schema and table) with its newest seq, inside its transaction:
PostgreSQL delivers it only when the write commits, and drops it when the
write rolls back. `wait_for_change` listens on one connection of its own
per store object (a thread reads it and wakes the waiters), so a watcher
hears of a write from any process or machine at once.

Failures
--------
Every psycopg or network failure becomes a `StoreError` naming the problem
and the server (``host:port/dbname``, never the password). Writes are never
retried: when the connection is lost before the reply, the commit may or may
not have happened, and sending an increment again could apply it twice, so
the error says that the outcome is unknown. An error the server reports
(a statement timeout, say) rolled the write back, and the error says that
nothing was written. Connections come from one `psycopg_pool` pool per
store object; a connection the server closed (a restart) is noticed before
it is handed out (a look at its socket, no round trip) and replaced, so the
store recovers by itself a few seconds after the server is back. Sessions
use ``statement_timeout`` (``?statement_timeout=``, also the idle-in-
transaction timeout), so a write stuck behind a lock fails instead of
hanging, and a client that dies mid-transaction does not hold the store's
lock for long.

An acknowledged write is a committed transaction, as durable as the
server's ``synchronous_commit`` makes it (with ``synchronous_standby_names``,
on a synchronous standby too, so a failover loses no acknowledged write);
wasikv leaves that setting to the server.

Writes made with raw SQL are not part of the contract: wasikv writers keep
versions, tombstones and the feed consistent among themselves.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import select
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool, PoolTimeout

from ..errors import ConfigError, InvalidStoreUrl, StoreError
from ._url import count_option, parse_query, password_of, redact, seconds_option
from .base import (
    S64_MAX,
    S64_MIN,
    Change,
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

_T = TypeVar("_T")
_Connection = psycopg.Connection[tuple[Any, ...]]

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 5432
DEFAULT_SCHEMA = "wasikv"
DEFAULT_LABEL = "default"
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_STATEMENT_TIMEOUT = 30.0
DEFAULT_MIN_SIZE = 1
DEFAULT_MAX_SIZE = 10
DEFAULT_CHANGE_WINDOW = 100_000
LAYOUT = 1
#: Deletes between two tombstone sweeps, and write transactions between two
#: change-feed sweeps (fewer when the window is smaller).
_PRUNE_INTERVAL = 1000
#: Bytes of a key in the `list_keys` index: btree entries hold about 2.7 kB.
_INDEX_PREFIX = 1024
#: How often the listening thread looks up from the socket to see whether the store closed.
_LISTEN_TICK = 0.5

_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")
_TABLE_NAME = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
_MAX_TABLE_NAME = 40
_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_PARAMETERS = (
    "schema",
    "table_prefix",
    "connect_timeout",
    "statement_timeout",
    "min_size",
    "max_size",
    "sslmode",
    "sslrootcert",
)
_ACCEPTED = (
    "accepted form: 'postgres://[USER[:PASSWORD]@]HOST[:PORT]/DBNAME' (or 'postgresql://…'), optionally "
    "followed by '?schema=S&table_prefix=T&connect_timeout=S&statement_timeout=S&min_size=N&max_size=N"
    "&sslmode=MODE&sslrootcert=PATH'"
)


#: Our pools' names start with this (the filter below recognizes them by it).
_POOL_NAME = "wasikv "


class _QuietPools(logging.Filter):
    """Drop psycopg_pool's warnings about wasikv's pools (errors pass).

    Every failure they report (a refused connection, a reconnect given up)
    reaches the caller as a `StoreError` naming the same problem, and a pool
    warns once per attempt, which buries the errors that matter.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR or not isinstance(record.args, tuple):
            return True
        return not any(isinstance(arg, str) and arg.startswith(_POOL_NAME) for arg in record.args)


logging.getLogger("psycopg.pool").addFilter(_QuietPools())


def default_table(label: str | None) -> str:
    """The table name of a label: ``kv_{slug}_{hash}``, lower-case letters, digits and single ``_``.

    The slug is the label's ASCII letters and digits (runs of anything else
    become one ``_``, at most 24 characters), the hash the start of the
    SHA-256 of the whole label, so labels that slug alike get tables of
    their own.
    """
    name = DEFAULT_LABEL if label is None else label
    slug = "_".join(re.findall(r"[a-z0-9]+", name.lower().encode("ascii", "replace").decode()))
    slug = slug[:24].strip("_")
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"kv_{slug}_{digest}" if slug else f"kv_{digest}"


class PostgresStore(Store):
    """A store in a PostgreSQL database; safe across threads, processes and hosts.

    Opening one connects and creates the store's tables if they are missing;
    a server that cannot be reached is a `StoreError`. Later, operations
    fail with `StoreError` while the server is away and work again when it
    is back.
    """

    atomic_batches: ClassVar[bool] = True
    change_notifications: ClassVar[bool] = True
    keeps_positions: ClassVar[bool] = True
    durable: ClassVar[bool] = True
    cross_process: ClassVar[bool] = True
    has_change_feed: ClassVar[bool] = True

    def overlaps(self, other: Store) -> str | None:
        """Whether `other` is a PostgreSQL store on this server and database with the same tables."""
        if not isinstance(other, PostgresStore):
            return None
        place = (self.host.lower(), self.port, self.dbname, self.schema, self.table)
        if (other.host.lower(), other.port, other.dbname, other.schema, other.table) != place:
            return None
        return (
            f"use the same PostgreSQL tables ({self.address}, {self.schema}.{self.table}); give each label "
            "a table_prefix of its own (without ?table_prefix=, each label gets tables of its own)"
        )

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        dbname: str = "postgres",
        *,
        user: str | None = None,
        password: str | None = None,
        schema: str = DEFAULT_SCHEMA,
        table_prefix: str | None = None,
        label: str | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        statement_timeout: float = DEFAULT_STATEMENT_TIMEOUT,
        min_size: int = DEFAULT_MIN_SIZE,
        max_size: int = DEFAULT_MAX_SIZE,
        sslmode: str | None = None,
        sslrootcert: str | None = None,
        tombstone_window: int = 100_000,
        change_window: int = DEFAULT_CHANGE_WINDOW,
        url: str | None = None,
    ) -> None:
        if not 0 < port < 65536:
            raise ValueError(f"port must be between 1 and 65535, not {port}")
        if not dbname:
            raise ValueError("dbname must not be empty")
        if _SCHEMA_NAME.fullmatch(schema) is None:
            raise ValueError(
                f"schema {schema!r} must be 1 to 40 ASCII letters, digits and '_', not starting with a digit"
            )
        table = default_table(label) if table_prefix is None else table_prefix
        if _TABLE_NAME.fullmatch(table) is None or len(table) > _MAX_TABLE_NAME:
            raise ValueError(
                f"table_prefix {table!r} must be 1 to {_MAX_TABLE_NAME} lower-case ASCII letters, digits "
                "and single '_' between them, starting with a letter"
            )
        for name, seconds in (("connect_timeout", connect_timeout), ("statement_timeout", statement_timeout)):
            if not (math.isfinite(seconds) and 0 < seconds <= 86_400):
                raise ValueError(
                    f"{name} must be a positive number of seconds (at most 86400), not {seconds!r}"
                )
        if not 0 <= min_size <= max_size or max_size < 1:
            raise ValueError(
                f"need 0 <= min_size <= max_size and max_size >= 1, not {min_size} and {max_size}"
            )
        if sslmode is not None and sslmode not in _SSLMODES:
            raise ValueError(f"sslmode must be one of {', '.join(_SSLMODES)}, not {sslmode!r}")
        if tombstone_window < 1:
            raise ValueError("tombstone_window must be at least 1")
        if change_window < 1:
            raise ValueError("change_window must be at least 1")
        self.host = host
        self.port = port
        self.dbname = dbname
        self.schema = schema
        self.table = table
        self.connect_timeout = float(connect_timeout)
        self.statement_timeout = float(statement_timeout)
        self.min_size = min_size
        self.max_size = max_size
        shown_host = f"[{host}]" if ":" in host else host
        #: Where the data lives, for messages: never includes credentials.
        self.address = f"{shown_host}:{port}/{dbname}"
        self.url = (
            url if url is not None else f"postgres://{self.address}?schema={schema}&table_prefix={table}"
        )
        self._where = f"postgres store at {self.address} ({schema}.{table})"
        self._password = password
        self._window = tombstone_window
        self._prune_every = min(_PRUNE_INTERVAL, tombstone_window)
        self._change_window = change_window
        self._sweep_changes_every = min(_PRUNE_INTERVAL, change_window)
        # Counted per store object without a lock: a lost update only delays a sweep.
        self._deletes = 0
        self._writes = 0
        self._closed = False
        self._connect_kwargs: dict[str, Any] = {
            "host": host,
            "port": port,
            "dbname": dbname,
            "user": user,
            "password": password,
            "connect_timeout": max(1, math.ceil(self.connect_timeout)),
            "application_name": "wasikv",
            # Notice a server that vanished without closing the connection
            # (a crashed machine, a dropped NAT entry) within about a minute.
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
            "sslmode": sslmode,
            "sslrootcert": sslrootcert,
        }
        self._connect_kwargs = {k: v for k, v in self._connect_kwargs.items() if v is not None}
        self._sql = _Statements(schema, table, self._channel())
        self._listen_lock = threading.Lock()
        self._listener: _Listener | None = None
        self._pool: ConnectionPool[_Connection] = ConnectionPool(
            "",
            kwargs={**self._connect_kwargs, "autocommit": True},
            min_size=min_size,
            max_size=max_size,
            open=False,
            configure=self._configure,
            check=self._check_connection,
            name=f"{_POOL_NAME}{self.address}",
            # How long an operation waits for a connection: a free one, or a
            # new one while the server is unreachable.
            timeout=self.connect_timeout,
            # A slot that cannot reconnect for this long is given up, and the
            # next operation that needs a connection connects at once: after
            # an outage the pool does not sit out a long backoff.
            reconnect_timeout=self.connect_timeout,
        )
        try:
            self._open()
            self._pool.open(wait=False)
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_url(cls, url: str, *, label: str | None = None) -> PostgresStore:
        """Open the store a ``postgres://`` or ``postgresql://`` URL names (see the module docs)."""
        return cls(**parse_url(url, label), url=url)

    # -- reads -----------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        """The value of `key`, or None when it does not exist."""
        raw = _encode_key(key)
        row = self._run("get", lambda conn: conn.execute(self._sql.get, (raw,), binary=True).fetchone())
        return None if row is None else row[0]

    def get_versioned(self, key: str) -> Versioned:
        """The value of `key` and its version, read in one statement (the watermark for unknown keys)."""
        raw = _encode_key(key)
        row = self._run(
            "get", lambda conn: conn.execute(self._sql.get_versioned, (raw,), binary=True).fetchone()
        )
        if row is None:
            raise StoreError(f"{self._where}: the meta table has no row (deleted around wasikv?)")
        return Versioned(row[0], int(row[1]))

    def exists(self, key: str) -> bool:
        """Whether `key` exists (an empty value exists)."""
        raw = _encode_key(key)
        row = self._run("exists", lambda conn: conn.execute(self._sql.exists, (raw,), binary=True).fetchone())
        return row is not None

    def list_keys(self, after: str | None, limit: int) -> list[str]:
        """Up to `limit` keys greater than `after`, in code-point order."""
        if limit <= 0:
            return []
        count = min(limit, S64_MAX)
        params: tuple[object, ...]
        if after is None:
            query, params = self._sql.list_first, (count,)
        elif type(after) is str:
            # A lone surrogate cannot be a key, but it still has a place in
            # code-point order, and surrogatepass keeps that order in bytes.
            start = after.encode("utf-8", "surrogatepass")
            query, params = self._sql.list_after, (start, start, count)
        else:
            raise StoreError(f"postgres store: cursor must be str, not {type(after).__name__}")
        rows = self._run("list-keys", lambda conn: conn.execute(query, params, binary=True).fetchall())
        return [bytes(row[0]).decode("utf-8") for row in rows]

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values of `keys`, in request order, read in one statement."""
        raws = [_encode_key(key) for key in keys]
        if not raws:
            return []
        rows = self._run(
            "get-many", lambda conn: conn.execute(self._sql.get_many, (raws,), binary=True).fetchall()
        )
        return [row[0] for row in rows]

    # -- writes ----------------------------------------------------------

    def set(self, key: str, value: bytes) -> None:
        """Create or replace `key`."""
        self.set_many([(key, value)])

    def delete(self, key: str) -> None:
        """Remove `key`, leaving a tombstone; a missing key is not an error."""
        self.delete_many([key])

    def increment(self, key: str, delta: int) -> int:
        """Add `delta` to the decimal counter at `key` and return the result."""
        raw = _encode_key(key)
        if type(delta) is not int or not S64_MIN <= delta <= S64_MAX:
            raise StoreError(f"increment: delta {delta!r} for key {key!r} is not an s64 integer")

        def body(conn: _Connection) -> int:
            self._lock_store(conn)
            row = conn.execute(self._sql.get, (raw,), binary=True).fetchone()
            new = add_delta(key, parse_counter(key, None if row is None else row[0]), delta)
            self._put(conn, [raw], [format_counter(new)])
            return new

        return self._run("increment", lambda conn: self._transaction(conn, body), write=True)

    def swap(self, key: str, version: int, value: bytes) -> bool:
        """Set `key` to `value` only if its version is still `version`."""
        check_item("postgres", key, value)
        raw = _encode_key(key)
        if type(version) is not int:
            raise StoreError(f"postgres store: version must be int, not {type(version).__name__}")

        def body(conn: _Connection) -> bool:
            self._lock_store(conn)
            row = conn.execute(self._sql.current_version, (raw,), binary=True).fetchone()
            if row is None or row[0] != version:
                return False
            self._put(conn, [raw], [value])
            return True

        return self._run("swap", lambda conn: self._transaction(conn, body), write=True)

    def set_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Set every pair in one statement (all or nothing); a later duplicate key wins."""
        keys: list[bytes] = []
        values: list[bytes] = []
        for key, value in items:
            check_item("postgres", key, value)
            keys.append(_encode_key(key))
            values.append(value)
        if keys:
            self._run("set", lambda conn: self._write(conn, keys, values), write=True)

    def delete_many(self, keys: Sequence[str]) -> None:
        """Delete every key in one statement (all or nothing), leaving tombstones."""
        for key in keys:
            check_key("postgres", key)
        raws = [_encode_key(key) for key in keys]
        if raws:
            self._run("delete", lambda conn: self._write(conn, raws, None), write=True)

    # -- change feed -----------------------------------------------------

    def changes(self, after: int, limit: int) -> list[Change]:
        """Up to `limit` retained changes with `seq > after`, oldest first.

        Writers commit in `seq` order (each holds the store's lock while it
        takes its numbers), so a read never sees a later change without the
        earlier ones.
        """
        if limit <= 0:
            return []
        params = (max(after, -1), min(limit, S64_MAX))
        rows = self._run(
            "changes", lambda conn: conn.execute(self._sql.changes, params, binary=True).fetchall()
        )
        return [Change(int(seq), bytes(key).decode("utf-8"), value) for seq, key, value in rows]

    def last_change(self) -> int:
        """The seq of the newest committed write (0 before the first)."""
        row = self._run("changes", lambda conn: conn.execute(self._sql.last_change, binary=True).fetchone())
        if row is None:
            raise StoreError(f"{self._where}: the meta table has no row (deleted around wasikv?)")
        return int(row[0])

    def wait_for_change(self, after: int, timeout: float) -> bool:
        """Block until a change with `seq > after` is committed (LISTEN/NOTIFY), or `timeout` passes."""
        if timeout <= 0:
            return self.last_change() > after
        listener = self._listening()
        # Listening before this read: a write committed after it is notified.
        if self.last_change() > after:
            return True
        try:
            return listener.wait(after, timeout)
        except psycopg.Error as exc:
            with self._listen_lock:
                if self._listener is listener:
                    self._listener = None
            raise StoreError(
                f"{self._where}: changes failed: lost the notification connection: {self._text(exc)}"
            ) from exc

    # -- change-feed positions -------------------------------------------

    def load_position(self, name: str) -> int | None:
        """The saved position of the change-feed reader `name`; None if it never saved one."""
        check_position_name("postgres", name)
        raw = _encode_name(name)
        row = self._run(
            "load-position",
            lambda conn: conn.execute(self._sql.load_position, (raw,), binary=True).fetchone(),
        )
        if row is None:
            return None
        # A bigint column: only a negative number can be wrong.
        literal = "'" + name.replace("'", "''") + "'"
        delete = (
            f'in psql, run DELETE FROM "{self.schema}"."{self.table}__positions" '
            f"WHERE name = convert_to({literal}, 'UTF8');"
        )
        return loaded_position(self._where, name, row[0], delete)

    def save_position(self, name: str, seq: int) -> None:
        """Save `seq` as the position of `name` (not a change, not a key)."""
        check_position("postgres", name, seq)
        raw = _encode_name(name)
        self._run(
            "save-position",
            lambda conn: conn.execute(self._sql.save_position, (raw, seq), binary=True),
            write=True,
        )

    def close(self) -> None:
        """Close the pool and the notification connection; later calls fail."""
        self._closed = True
        with self._listen_lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()
        try:
            self._pool.close(timeout=1.0)
        except (psycopg.Error, RuntimeError):
            pass

    # -- internals -------------------------------------------------------

    def _channel(self) -> str:
        digest = hashlib.sha256(f"{self.schema}\0{self.table}".encode()).hexdigest()[:24]
        return f"wasikv_{digest}"

    def _run(self, operation: str, call: Callable[[_Connection], _T], *, write: bool = False) -> _T:
        if self._closed:
            raise StoreError(f"{self._where}: the store is closed")
        try:
            conn = self._pool.getconn()
        except PoolTimeout as exc:
            raise self._unavailable(operation) from exc
        except psycopg.Error as exc:
            raise StoreError(f"{self._where}: {operation} failed: {self._text(exc)}") from exc
        try:
            return call(conn)
        except StoreError:
            raise
        except psycopg.Error as exc:
            raise StoreError(f"{self._where}: {operation} failed: {self._describe(exc, write)}") from exc
        except UnicodeDecodeError as exc:
            raise StoreError(
                f"{self._where}: {operation} failed: a stored key is not UTF-8 (written around wasikv?)"
            ) from exc
        finally:
            self._pool.putconn(conn)

    def _transaction(self, conn: _Connection, body: Callable[[_Connection], _T]) -> _T:
        with conn.transaction():
            result = body(conn)
            self._sweep(conn)
        return result

    def _write(self, conn: _Connection, keys: list[bytes], values: list[bytes] | None) -> None:
        """One set or delete statement; in a transaction with the sweeps when one is due."""
        if values is None:
            self._deletes += len(keys)
        if self._writes + 1 >= self._sweep_changes_every or self._deletes >= self._prune_every:
            self._transaction(conn, lambda conn: self._put(conn, keys, values))
        else:
            self._writes += 1
            self._put(conn, keys, values)

    def _put(self, conn: _Connection, keys: list[bytes], values: list[bytes] | None) -> None:
        if values is None:
            conn.execute(self._sql.delete_many, (len(keys), keys), binary=True)
        else:
            conn.execute(self._sql.set_many, (len(keys), keys, values), binary=True)

    def _lock_store(self, conn: _Connection) -> None:
        # Every write locks the meta row first (set/delete by updating it), so
        # the statements after this one see every earlier write of the store.
        if conn.execute(self._sql.lock, binary=True).fetchone() is None:
            raise StoreError(f"{self._where}: the meta table has no row (deleted around wasikv?)")

    def _sweep(self, conn: _Connection) -> None:
        """Prune old changes and tombstones when due (inside a write transaction)."""
        self._writes += 1
        if self._writes >= self._sweep_changes_every:
            self._writes = 0
            conn.execute(self._sql.drop_old_changes, (self._change_window,), binary=True)
        if self._deletes >= self._prune_every:
            self._deletes = 0
            # Keys without a row then report the newest pruned version, so a
            # handle pinned to any pruned tombstone (or an older watermark) conflicts.
            conn.execute(self._sql.prune_tombstones, (self._window,), binary=True)

    def _open(self) -> None:
        """Create the tables on a connection of its own, which fails at once with the reason."""
        try:
            conn = psycopg.connect(**self._connect_kwargs, autocommit=True)
        except psycopg.Error as exc:
            raise StoreError(
                f"{self._where}: open failed: cannot connect to PostgreSQL: {self._text(exc)}"
            ) from exc
        try:
            with conn:
                self._configure(conn)
                self._create_tables(conn)
        except StoreError:
            raise
        except psycopg.Error as exc:
            raise StoreError(f"{self._where}: open failed: {self._describe(exc, write=False)}") from exc

    def _create_tables(self, conn: _Connection) -> None:
        sql = self._sql
        present = conn.execute(sql.present, binary=True).fetchone()
        if present is None or not all(present):
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_id(self.schema),))
                if conn.execute(sql.schema_exists, binary=True).fetchone() == (None,):
                    conn.execute(sql.create_schema)
                for statement in sql.create_tables:
                    conn.execute(statement)
        try:
            row = conn.execute(sql.layout, binary=True).fetchone()
        except psycopg.errors.UndefinedColumn:
            raise StoreError(
                f"{self._where}: the table {sql.meta} is not a wasikv table; choose another "
                "table_prefix or schema"
            ) from None
        if row is None:
            raise StoreError(f"{self._where}: the meta table has no row (deleted around wasikv?)")
        if row[0] > LAYOUT:
            raise StoreError(
                f"{self._where}: table layout {row[0]} is newer than this wasikv supports ({LAYOUT})"
            )
        # Processes that only ever write a little (`wasikv kv`) sweep here.
        conn.execute(sql.drop_old_changes, (self._change_window,), binary=True)

    def _configure(self, conn: _Connection) -> None:
        # A write waiting behind a lock fails instead of hanging, and a client
        # that died mid-transaction does not hold the store's lock for long.
        milliseconds = str(max(1, round(self.statement_timeout * 1000)))
        conn.execute(
            "SELECT set_config('statement_timeout', %s, false), "
            "set_config('idle_in_transaction_session_timeout', %s, false)",
            (milliseconds, milliseconds),
        )

    def _check_connection(self, conn: _Connection) -> None:
        """Refuse a pooled connection the server closed, without a round trip."""
        if conn.closed or conn.broken or conn.pgconn.transaction_status != TransactionStatus.IDLE:
            raise psycopg.OperationalError("the connection is not usable")
        try:
            readable = bool(select.select([conn.pgconn.socket], [], [], 0)[0])
        except (OSError, ValueError, psycopg.Error):
            readable = True
        if not readable:
            return
        # An idle connection has nothing to read unless the server closed it
        # (a restart sends FATAL, then EOF); a stray notice costs a reconnect.
        conn.close()
        # The server closed this one, so it closed the others too: replace them all.
        self._pool.drain()
        raise psycopg.OperationalError("the server closed the connection")

    def _listening(self) -> _Listener:
        if self._closed:
            raise StoreError(f"{self._where}: the store is closed")
        with self._listen_lock:
            if self._listener is not None and self._listener.alive():
                return self._listener
            try:
                conn = psycopg.connect(**self._connect_kwargs, autocommit=True)
            except psycopg.Error as exc:
                raise StoreError(f"{self._where}: changes failed: {self._text(exc)}") from exc
            try:
                conn.execute(self._sql.listen)
            except psycopg.Error as exc:
                conn.close()
                raise StoreError(f"{self._where}: changes failed: cannot LISTEN: {self._text(exc)}") from exc
            self._listener = _Listener(conn, self.address)
            return self._listener

    def _unavailable(self, operation: str) -> StoreError:
        """Why no pooled connection came: connect once more to learn what is wrong."""
        try:
            probe = psycopg.connect(**self._connect_kwargs)
        except psycopg.Error as exc:
            return StoreError(
                f"{self._where}: {operation} failed: cannot connect to PostgreSQL: {self._text(exc)}"
            )
        probe.close()
        return StoreError(
            f"{self._where}: {operation} failed: no pooled connection within {self.connect_timeout:g}s "
            f"(all {self.max_size} busy, or the server was unreachable until just now; raise max_size "
            "if this persists)"
        )

    def _describe(self, exc: psycopg.Error, write: bool) -> str:
        text = self._text(exc)
        state = exc.sqlstate
        lost = state is None or (state[:2] in ("08", "57") and state != "57014")
        if isinstance(exc, psycopg.errors.QueryCanceled):
            text = f"the statement ran past statement_timeout ({self.statement_timeout:g}s): {text}"
        elif isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
            text = "the server is a read-only standby; writes need the primary"
        elif isinstance(exc, psycopg.errors.UndefinedTable):
            text = f"a table of the store is missing (dropped around wasikv?): {text}"
        if not write:
            return text
        if lost:
            return f"lost the connection to PostgreSQL: {text}; the write may or may not have been applied"
        return f"{text}; nothing was written"

    def _text(self, exc: BaseException) -> str:
        text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        text = text or type(exc).__name__
        if self._password:
            text = text.replace(self._password, "***")
        return text


class _Listener:
    """One LISTENing connection and the thread that reads its notifications."""

    def __init__(self, conn: _Connection, address: str) -> None:
        self._conn = conn
        self._condition = threading.Condition()
        self._latest = -1
        self._error: psycopg.Error | None = None
        self._stopping = False
        self._thread = threading.Thread(target=self._read, name=f"wasikv-listen {address}", daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        with self._condition:
            return self._error is None and not self._stopping

    def wait(self, after: int, timeout: float) -> bool:
        """Whether a write above seq `after` is notified within `timeout`; raises if the connection died."""
        with self._condition:
            self._condition.wait_for(lambda: self._latest > after or self._error is not None, timeout)
            if self._latest > after:
                return True
            if self._error is not None:
                raise self._error
            return False

    def stop(self) -> None:
        # The thread closes the connection within a tick; close() need not wait.
        with self._condition:
            self._stopping = True

    def _read(self) -> None:
        try:
            while not self._stopping:
                for notify in self._conn.notifies(timeout=_LISTEN_TICK):
                    try:
                        seq = int(notify.payload)
                    except ValueError:
                        continue  # not a wasikv write
                    with self._condition:
                        if seq > self._latest:
                            self._latest = seq
                            self._condition.notify_all()
        except psycopg.Error as exc:
            with self._condition:
                self._error = exc
                self._condition.notify_all()
        finally:
            try:
                self._conn.close()
            except psycopg.Error:
                pass


class _Statements:
    """The SQL of one store; names are checked identifiers, quoted."""

    def __init__(self, schema: str, table: str, channel: str) -> None:
        def name(suffix: str = "") -> str:
            return f'"{schema}"."{table}{suffix}"'

        kv, changes, positions, meta = name(), name("__changes"), name("__positions"), name("__meta")
        self.meta = meta
        p = _INDEX_PREFIX
        self.schema_exists = f"SELECT to_regnamespace('\"{schema}\"')"
        self.present = (
            f"SELECT to_regclass('{kv}') IS NOT NULL, to_regclass('{changes}') IS NOT NULL, "
            f"to_regclass('{positions}') IS NOT NULL, to_regclass('{meta}') IS NOT NULL"
        )
        self.create_schema = f'CREATE SCHEMA IF NOT EXISTS "{schema}"'
        # A tombstone is a row whose value is NULL; it only carries the version.
        self.create_tables = (
            f"""CREATE TABLE IF NOT EXISTS {kv} (
                key bytea NOT NULL,
                value bytea,
                version bigint NOT NULL,
                key_hash bytea GENERATED ALWAYS AS (sha256(key)) STORED,
                CONSTRAINT "{table}__pkey" PRIMARY KEY (key_hash)
            )""",
            f'CREATE INDEX IF NOT EXISTS "{table}__live" ON {kv} (substr(key, 1, {p})) '
            "WHERE value IS NOT NULL",
            f'CREATE INDEX IF NOT EXISTS "{table}__tombstones" ON {kv} (version) WHERE value IS NULL',
            f"""CREATE TABLE IF NOT EXISTS {changes} (
                seq bigint NOT NULL,
                key bytea NOT NULL,
                value bytea,
                CONSTRAINT "{table}__changes_pkey" PRIMARY KEY (seq)
            )""",
            f"""CREATE TABLE IF NOT EXISTS {positions} (
                name bytea NOT NULL,
                seq bigint NOT NULL,
                CONSTRAINT "{table}__positions_pkey" PRIMARY KEY (name)
            )""",
            f"""CREATE TABLE IF NOT EXISTS {meta} (
                id integer NOT NULL CHECK (id = 0),
                seq bigint NOT NULL,
                watermark bigint NOT NULL,
                layout integer NOT NULL,
                CONSTRAINT "{table}__meta_pkey" PRIMARY KEY (id)
            )""",
            f"INSERT INTO {meta} (id, seq, watermark, layout) VALUES (0, 0, 0, {LAYOUT}) "
            "ON CONFLICT DO NOTHING",
        )
        self.layout = f"SELECT layout FROM {meta} WHERE id = 0"
        self.listen = f'LISTEN "{channel}"'

        by_key = "key_hash = sha256(%s)"
        self.get = f"SELECT value FROM {kv} WHERE {by_key}"
        self.exists = f"SELECT 1 FROM {kv} WHERE {by_key} AND value IS NOT NULL"
        self.get_versioned = (
            f"SELECT kv.value, coalesce(kv.version, m.watermark) FROM {meta} m "
            f"LEFT JOIN {kv} kv ON kv.{by_key} WHERE m.id = 0"
        )
        self.current_version = (
            f"SELECT coalesce((SELECT version FROM {kv} WHERE {by_key}), watermark) FROM {meta} WHERE id = 0"
        )
        self.get_many = (
            f"SELECT kv.value FROM unnest(%s::bytea[]) WITH ORDINALITY AS k(key, i) "
            f"LEFT JOIN {kv} kv ON kv.key_hash = sha256(k.key) ORDER BY k.i"
        )
        # (prefix, key) order is key order; the prefix is what the index holds.
        order = f"ORDER BY substr(key, 1, {p}), key"
        self.list_first = f"SELECT key FROM {kv} WHERE value IS NOT NULL {order} LIMIT %s"
        self.list_after = (
            f"SELECT key FROM {kv} WHERE value IS NOT NULL AND substr(key, 1, {p}) >= substr(%s, 1, {p}) "
            f"AND key > %s {order} LIMIT %s"
        )
        self.lock = f"SELECT seq FROM {meta} WHERE id = 0 FOR UPDATE"
        # One statement per write: take n numbers (locking the meta row until
        # the commit), notify, log every item, and upsert the last value of
        # each key. Parameters: n, keys, values.
        bump = (
            f"WITH s AS (UPDATE {meta} SET seq = seq + %s WHERE id = 0 "
            f"RETURNING seq, pg_notify('{channel}', seq::text))"
        )
        upsert = (
            f"INSERT INTO {kv} (key, value, version) "
            "SELECT DISTINCT ON (key) key, value, seq FROM items ORDER BY key, seq DESC "
            "ON CONFLICT (key_hash) DO UPDATE SET value = excluded.value, version = excluded.version"
        )
        self.set_many = (
            f"{bump}, items AS (SELECT s.seq - count(*) OVER () + t.i AS seq, t.key, t.value "
            "FROM s, unnest(%s::bytea[], %s::bytea[]) WITH ORDINALITY AS t(key, value, i)), "
            f"log AS (INSERT INTO {changes} (seq, key, value) SELECT seq, key, value FROM items) {upsert}"
        )
        self.delete_many = (
            f"{bump}, items AS (SELECT s.seq - count(*) OVER () + t.i AS seq, t.key, NULL::bytea AS value "
            "FROM s, unnest(%s::bytea[]) WITH ORDINALITY AS t(key, i)), "
            f"log AS (INSERT INTO {changes} (seq, key, value) SELECT seq, key, value FROM items) {upsert}"
        )
        self.prune_tombstones = (
            f"WITH d AS (DELETE FROM {kv} WHERE value IS NULL "
            f"AND version < (SELECT seq FROM {meta} WHERE id = 0) - %s RETURNING version) "
            f"UPDATE {meta} SET watermark = greatest(watermark, (SELECT max(version) FROM d)) WHERE id = 0"
        )
        self.changes = f"SELECT seq, key, value FROM {changes} WHERE seq > %s ORDER BY seq LIMIT %s"
        self.last_change = f"SELECT seq FROM {meta} WHERE id = 0"
        self.drop_old_changes = (
            f"DELETE FROM {changes} WHERE seq <= (SELECT seq FROM {meta} WHERE id = 0) - %s"
        )
        self.load_position = f"SELECT seq FROM {positions} WHERE name = %s"
        self.save_position = (
            f"INSERT INTO {positions} (name, seq) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET seq = excluded.seq"
        )


def _lock_id(schema: str) -> int:
    """The advisory lock that serializes creating tables in `schema`."""
    return int.from_bytes(hashlib.sha256(f"wasikv create {schema}".encode()).digest()[:8], "big", signed=True)


def _encode_key(key: str) -> bytes:
    check_key("postgres", key)
    try:
        return key.encode("utf-8")
    except UnicodeEncodeError:
        raise StoreError(f"postgres store: key {key!r} is not valid Unicode text (lone surrogate)") from None


def _encode_name(name: str) -> bytes:
    try:
        return name.encode("utf-8")
    except UnicodeEncodeError:
        raise StoreError(f"postgres store: position name {name!r} is not valid Unicode text") from None


# -- URLs ----------------------------------------------------------------------


def parse_url(url: str, label: str | None) -> dict[str, Any]:
    """The `PostgresStore` arguments a URL stands for; `ConfigError` (without the password) if it is bad."""
    shown = redact(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        problem = str(exc)
        if password := password_of(url):
            problem = problem.replace(password, "***")
        raise InvalidStoreUrl(f"store URL {shown!r}: {problem}; {_ACCEPTED}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("postgres", "postgresql"):
        raise InvalidStoreUrl(f"store URL {shown!r} is not a postgres URL; {_ACCEPTED}")
    if not url[len(scheme) + 1 :].startswith("//"):
        raise InvalidStoreUrl(f"store URL {shown!r}: a postgres URL starts with '{scheme}://'; {_ACCEPTED}")
    if parts.fragment:
        raise InvalidStoreUrl(f"store URL {shown!r}: a postgres URL has no '#' part")
    if "," in parts.netloc:
        raise InvalidStoreUrl(f"store URL {shown!r}: only one host is supported; {_ACCEPTED}")
    try:
        user = unquote(parts.username, errors="strict") if parts.username else None
        password = unquote(parts.password, errors="strict") if parts.password is not None else None
        host = unquote(parts.hostname, errors="strict") if parts.hostname else DEFAULT_HOST
        dbname = unquote(parts.path[1:], errors="strict")
    except UnicodeDecodeError:
        raise InvalidStoreUrl(f"store URL {shown!r}: invalid percent-encoding") from None
    if not dbname or "/" in dbname:
        raise InvalidStoreUrl(f"store URL {shown!r} names no database (add /DBNAME); {_ACCEPTED}")
    options = parse_query(shown, parts.query, _PARAMETERS)
    schema = options.get("schema", DEFAULT_SCHEMA)
    if _SCHEMA_NAME.fullmatch(schema) is None:
        raise InvalidStoreUrl(
            f"store URL {shown!r}: schema {schema!r} must be 1 to 40 ASCII letters, digits and '_', "
            "not starting with a digit"
        )
    table = options.get("table_prefix")
    if table is not None and (_TABLE_NAME.fullmatch(table) is None or len(table) > _MAX_TABLE_NAME):
        raise InvalidStoreUrl(
            f"store URL {shown!r}: table_prefix {table!r} must be 1 to {_MAX_TABLE_NAME} lower-case ASCII "
            "letters, digits and single '_' between them, starting with a letter"
        )
    sslmode = options.get("sslmode")
    if sslmode is not None and sslmode not in _SSLMODES:
        raise InvalidStoreUrl(
            f"store URL {shown!r}: sslmode must be one of {', '.join(_SSLMODES)}, not {sslmode!r}"
        )
    min_size = count_option(shown, options, "min_size", DEFAULT_MIN_SIZE, minimum=0, maximum=1000)
    max_size = count_option(
        shown, options, "max_size", max(DEFAULT_MAX_SIZE, min_size), minimum=1, maximum=1000
    )
    if min_size > max_size:
        raise InvalidStoreUrl(
            f"store URL {shown!r}: min_size ({min_size}) must not be larger than max_size ({max_size})"
        )
    return {
        "host": host,
        "port": DEFAULT_PORT if port is None else port,
        "dbname": dbname,
        "user": user,
        "password": password,
        "schema": schema,
        "table_prefix": table,
        "label": label,
        "connect_timeout": seconds_option(shown, options, "connect_timeout", DEFAULT_CONNECT_TIMEOUT),
        "statement_timeout": seconds_option(shown, options, "statement_timeout", DEFAULT_STATEMENT_TIMEOUT),
        "min_size": min_size,
        "max_size": max_size,
        "sslmode": sslmode,
        "sslrootcert": options.get("sslrootcert"),
    }


def open_url(url: str, *, label: str | None = None) -> PostgresStore:
    """Open the store a ``postgres://`` URL names, for `label` (the registry's opener)."""
    return PostgresStore.from_url(url, label=label)


def config_url(label: str, table: Mapping[str, object], base: Path, manifest_dir: Path) -> str:
    """`type = "postgres"`: the table's `url`; `ValueError` says what to fix."""
    url = table.get("url")
    if url is None:
        raise ValueError("'url' is missing; add url = \"postgres://USER@HOST:5432/DBNAME\"")
    if not isinstance(url, str) or not re.match(r"postgres(?:ql)?://", url, re.IGNORECASE):
        raise ValueError("'url' must be a string starting with postgres:// or postgresql://")
    try:
        parse_url(url, label)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    return url
