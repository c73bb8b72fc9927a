"""A store in PostgreSQL, shared by every host, process and machine that uses the same tables.

A store is a set of tables in one schema (`postgres_sql` holds their SQL). Every
write updates one meta row first, so writers of a store run one at a time and
versions are consecutive and commit in order; ``pg_notify`` wakes watchers.
Writes are never retried: a lost connection is a `StoreError` saying the
outcome is unknown. The table layout, why this gives SQLite's semantics, and
how failures are reported: docs/concepts/postgres-store.md.
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
from urllib.parse import unquote

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool, PoolTimeout

from ..errors import ConfigError, InvalidStoreUrl, StoreError
from . import _shared
from ._url import count_option, parse_query, redact, seconds_option, split_server_url
from .base import (
    S64_MAX,
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
from .postgres_sql import LAYOUT, Statements

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
DEFAULT_CHANGE_WINDOW = _shared.DEFAULT_CHANGE_WINDOW
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
    has_leases: ClassVar[bool] = True

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
        tombstone_window: int = _shared.DEFAULT_TOMBSTONE_WINDOW,
        change_window: int = DEFAULT_CHANGE_WINDOW,
        url: str | None = None,
    ) -> None:
        _shared.check_port(port)
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
        _shared.check_seconds("connect_timeout", connect_timeout, at_most=86_400)
        _shared.check_seconds("statement_timeout", statement_timeout, at_most=86_400)
        if not 0 <= min_size <= max_size or max_size < 1:
            raise ValueError(
                f"need 0 <= min_size <= max_size and max_size >= 1, not {min_size} and {max_size}"
            )
        if sslmode is not None and sslmode not in _SSLMODES:
            raise ValueError(f"sslmode must be one of {', '.join(_SSLMODES)}, not {sslmode!r}")
        _shared.check_windows(tombstone_window, change_window)
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
        #: The URL for messages and logs (`redact`ed: the password is never shown).
        self.url = (
            redact(url)
            if url is not None
            else f"postgres://{self.address}?schema={schema}&table_prefix={table}"
        )
        self._where = f"postgres store at {self.address} ({schema}.{table})"
        self._password = password
        self._window = tombstone_window
        self._prune_every = _shared.prune_every(tombstone_window)
        self._change_window = change_window
        self._sweep_changes_every = _shared.prune_every(change_window)
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
        self._sql = Statements(schema, table, self._channel())
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
        _shared.check_cursor("postgres", after)
        if after is None:
            query, params = self._sql.list_first, (count,)
        else:
            # A lone surrogate cannot be a key, but it still has a place in
            # code-point order, and surrogatepass keeps that order in bytes.
            start = after.encode("utf-8", "surrogatepass")
            query, params = self._sql.list_after, (start, start, count)
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
        _shared.check_delta(key, delta)

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
        _shared.check_version("postgres", version)

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

    # -- leases (see `Store.acquire_lease`): one statement each ------------

    def acquire_lease(self, name: str, holder: str, seconds: float) -> LeaseState:
        """Take the lease `name` for `seconds` unless another holder's has not expired."""
        ms = _shared.check_lease("postgres", name, seconds)
        _shared.check_holder("postgres", holder)
        raw = _encode_name(name)
        who = _encode_name(holder).decode("utf-8")
        sql = self._sql

        def take(conn: _Connection) -> LeaseState:
            row = conn.execute(sql.acquire_lease, (raw, who, ms)).fetchone()
            if row is not None:
                return LeaseState(True, row[0], row[1], row[2])
            held = conn.execute(sql.lease, (raw,)).fetchone()
            if held is None:  # deleted around wasikv between the two statements
                return LeaseState(False, 0, "", 0)
            return LeaseState(False, held[0], held[1], held[2])

        return self._run("acquire-lease", take, write=True)

    def renew_lease(self, name: str, holder: str, token: int, seconds: float) -> bool:
        """Extend the lease if `token` is still its newest."""
        ms = _shared.check_lease("postgres", name, seconds)
        _shared.check_token("postgres", token)
        raw = _encode_name(name)
        cursor = self._run(
            "renew-lease", lambda conn: conn.execute(self._sql.renew_lease, (ms, raw, token)), write=True
        )
        return cursor.rowcount > 0

    def release_lease(self, name: str, token: int) -> None:
        """Expire the lease now if `token` is still its newest."""
        check_position_name("postgres", name)
        _shared.check_token("postgres", token)
        raw = _encode_name(name)
        release = self._sql.release_lease
        self._run("release-lease", lambda conn: conn.execute(release, (raw, token)), write=True)

    def save_fenced(self, name: str, token: int, seq: int, claimed: int) -> bool:
        """Save the position and the claim in one statement, only if `token` is the lease's newest."""
        check_position("postgres", name, seq)
        check_position("postgres", name, claimed)
        _shared.check_token("postgres", token)
        raw = _encode_name(name)
        row = self._run(
            "save-fenced",
            lambda conn: conn.execute(self._sql.save_fenced, (claimed, raw, token, seq)).fetchone(),
            write=True,
        )
        return row is not None

    def lease_members(self, group: str, member: str, seconds: float) -> int:
        """Record `member` alive for `seconds` (by the server's clock); the members alive now."""
        ms = _shared.check_lease("postgres", group, seconds)
        _shared.check_holder("postgres", member)
        raw = _encode_name(group)
        who = _encode_name(member).decode("utf-8")
        row = self._run(
            "lease-members",
            lambda conn: conn.execute(self._sql.lease_members, (raw, who, ms, raw, raw, who)).fetchone(),
            write=True,
        )
        return int(row[0]) if row is not None else 1

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
            raise _shared.closed(self._where)
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
        try:
            if present is None or not all(present):
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_id(self.schema),))
                    if conn.execute(sql.schema_exists, binary=True).fetchone() == (None,):
                        conn.execute(sql.create_schema)
                    for statement in sql.create_tables:
                        conn.execute(statement)
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
            raise _shared.closed(self._where)
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
            return f"lost the connection to PostgreSQL: {text}; {_shared.UNKNOWN_OUTCOME}"
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


def _lock_id(schema: str) -> int:
    """The advisory lock that serializes creating tables in `schema`."""
    return int.from_bytes(hashlib.sha256(f"wasikv create {schema}".encode()).digest()[:8], "big", signed=True)


def _encode_key(key: str) -> bytes:
    return _shared.encode_key("postgres", key)


def _encode_name(name: str) -> bytes:
    return _shared.encode_name("postgres", name)


# -- URLs ----------------------------------------------------------------------


def parse_url(url: str, label: str | None) -> dict[str, Any]:
    """The `PostgresStore` arguments a URL stands for; `ConfigError` (without the password) if it is bad."""
    shown = redact(url)
    parts = split_server_url(url, "postgres", ("postgres", "postgresql"), DEFAULT_HOST, _ACCEPTED)
    if "," in parts.netloc:
        raise InvalidStoreUrl(f"store URL {shown!r}: only one host is supported; {_ACCEPTED}")
    try:
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
        "host": parts.host,
        "port": DEFAULT_PORT if parts.port is None else parts.port,
        "dbname": dbname,
        "user": parts.username,
        "password": parts.password,
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
