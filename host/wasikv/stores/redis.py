"""A store in Redis, shared by every host, process and machine that uses the same prefix.

Data layout
-----------
Everything a store keeps lives under its key prefix ``P`` (default
``wasikv:{label}:``, overridable with ``?prefix=``) followed by ``|``, a
character no prefix may contain, so several labels and several applications
share one Redis database without seeing each other:

``P|k:{key}``
    The value, as a plain Redis string. ``GET`` from ``redis-cli`` shows it,
    and counters are decimal text written by Redis' own ``INCRBY``, so
    ``redis-cli INCRBY``/``GET`` interoperate with `increment`.
``P|seq``
    A counter every write bumps; the bumped value is the version of the write.
    It starts at the server clock in microseconds, so versions keep growing
    even when Redis loses its data (a restart without persistence).
``P|versions``
    A hash: key -> version of every live key.
``P|index``
    A sorted set of the live keys, all with score 0. ``ZRANGEBYLEX`` returns
    members in byte order, and UTF-8 byte order is code-point order, so
    `list_keys` pages are exactly the ones the other stores return: no
    duplicates (which ``SCAN`` can return) and no missed keys.
``P|tombstones``
    A sorted set: deleted key -> version of its delete, so a `swap` pinned
    before a delete fails. Tombstones older than ``tombstone_window`` writes
    are pruned by the delete that ages them out; the newest pruned version
    becomes ``P|watermark``, the version of every key that has no entry, so
    a handle pinned to a pruned tombstone (or to an older watermark) still
    conflicts.
``P|changes``
    The change feed (`changes`, `last_change`, `wait_for_change`), a Redis
    stream with one entry per committed write: ID ``{version}-0``, fields
    ``k`` (the key) and, for sets, ``v`` (the value written). Write scripts
    append to it only while it exists, so stores nobody watches spend no
    memory on it: `last_change` and `changes` create it (with one entry
    without ``k``, marking where the feed starts). Every append trims it to
    about ``change_window`` entries (``MAXLEN ~``). `wait_for_change` blocks
    in ``XREAD``, so a watcher hears of a write from any process or machine
    at once.
``P|positions``
    A hash: change-feed reader name -> the seq of the last change it handled
    (`load_position`, `save_position`). It is not a key of the store and
    saving a position is not a change.

Why the separator
-----------------
Every Redis key a store uses is ``P + "|" + rest``, and ``P`` contains no
``|``: the first ``|`` of the key name comes right after the prefix, so the
prefix is recoverable from the key name alone (everything before the first
``|``). Two stores with different prefixes therefore never share a key, even
when one prefix extends the other: with ``app:`` and ``app:k:``, every key of
the second starts with ``app:k:|`` while every key of the first starts with
``app:|``, and the two differ at the byte after ``app:``. Within one store,
values (``k:``) and the metadata names above never collide, as no metadata
name starts with ``k:``. Label-derived prefixes percent-encode ``%``, ``:``
and ``|``, so they never contain the separator and never nest.

Without the separator (the layout of earlier wasikv versions: ``P seq``,
``P k:{key}``, ...) the value keys of ``app:`` included every key of
``app:k:``: a guest granted only the first label could read the second's
values, and break its writes (WRONGTYPE) by writing a key named ``index``.
A store whose prefix holds data in that layout (``P seq`` exists) refuses
every operation with a `StoreError` that says to run ``wasikv kv
migrate-redis`` (`migrate_layout`); it checks once, on its first operation.
Hosts also refuse to define two labels whose prefixes on one server and
database are equal or nest (`RedisStore.overlaps`): they no longer share
keys, but ``SCAN MATCH app:*`` (inspection, cleanup scripts) would still
sweep both.

Why Lua scripts with a version field
------------------------------------
Every write (set, delete, increment, swap, set-many, delete-many) is one Lua
script that updates the value, the version, the index, the tombstones and
the change feed together. Redis runs a script atomically with respect to every other client,
so the compare in `swap` ("is the version still N?") and its write cannot be
interleaved with a write from any other process or machine, and a write
with identical bytes still gets a new version (so ABA is detected).
WATCH/MULTI/EXEC would also be safe, but needs a connection pinned across
several round trips and a retry loop whenever any writer touches the key;
a script is one round trip, never retries, and gives the same answer.
`get_versioned` is a read-only script too, so value and version come from
one consistent moment. The scripts use the Redis 7 ``#!lua`` shebang, so
when Redis is out of memory it refuses the writes that add data up front
instead of failing half-way (deletes still run: they free memory); Redis 7
or newer is required.

Failures
--------
Every Redis or network failure becomes a `StoreError` naming the problem and
the Redis address (never the password). Writes are never retried: a write
whose reply was lost may have been applied, and sending it again could apply
an ``INCRBY`` twice, so redis-py's retry is switched off and the error says
that the outcome is unknown. Connections come from one pool per store
object; a connection the server closed (a restart) is replaced when it is
taken from the pool, so the store recovers by itself when Redis is back.

Writes made with raw Redis commands to ``P|k:{key}`` are visible to reads
and `increment`, but they do not bump versions or update the index: CAS and
`list_keys` guarantees hold among wasikv writers. Redis Cluster is not
supported (the scripts touch several keys); a hash tag in the prefix, such
as ``?prefix={app}:``, keeps all of a store's keys in one slot.
"""

from __future__ import annotations

import ipaddress
import math
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar, cast
from urllib.parse import quote, unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from ..errors import InvalidStoreUrl, StoreError
from ._url import count_option, parse_query, password_of, redact, seconds_option
from .base import (
    S64_MAX,
    S64_MIN,
    Change,
    Store,
    Versioned,
    add_delta,
    check_item,
    check_position,
    check_position_name,
    loaded_position,
    parse_counter,
)

_T = TypeVar("_T")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 6379
DEFAULT_LABEL = "default"
DEFAULT_SOCKET_TIMEOUT = 5.0
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_MAX_CONNECTIONS = 50
#: Idle seconds after which a pooled connection is PINGed before use, which
#: catches connections a firewall or NAT dropped without telling either side.
HEALTH_CHECK_INTERVAL = 30
#: ZRANGEBYLEX takes a signed 64-bit count; larger limits mean "all".
_MAX_LIMIT = 2**62
#: Changes the feed keeps (about: Redis trims whole stream nodes).
DEFAULT_CHANGE_WINDOW = 100_000
#: Ends every prefix in key names (``P|seq``, ``P|k:{key}``); no prefix may contain it.
SEPARATOR = "|"
_SEP = SEPARATOR.encode()
#: The names of a store's metadata keys, in the order the scripts take them
#: as KEYS; ``P seq`` in the old layout moves last (see `migrate_layout`).
_META_NAMES = (b"seq", b"versions", b"index", b"tombstones", b"watermark", b"changes")

_ACCEPTED = (
    "accepted form: 'redis://[USER:PASSWORD@]HOST[:PORT][/DB]' or 'rediss://…' (TLS), optionally "
    "followed by '?prefix=P&socket_timeout=S&connect_timeout=S&max_connections=N' "
    "(rediss also takes ssl_ca_certs=PATH)"
)
_PARAMETERS = ("prefix", "socket_timeout", "connect_timeout", "max_connections", "ssl_ca_certs")


def default_prefix(label: str | None) -> str:
    """The key prefix of a label: ``wasikv:{label}:``.

    ``%``, ``:`` and ``|`` in the label are percent-encoded, so the prefix of
    one label never starts with another label's prefix and never contains
    the separator.
    """
    name = DEFAULT_LABEL if label is None else label
    return "wasikv:" + name.replace("%", "%25").replace(":", "%3A").replace("|", "%7C") + ":"


def _legacy_default_prefix(label: str | None) -> str:
    # Before the separator, "|" in labels was kept as it is.
    name = DEFAULT_LABEL if label is None else label
    return "wasikv:" + name.replace("%", "%25").replace(":", "%3A") + ":"


# -- Lua ---------------------------------------------------------------------
#
# KEYS[1] seq, KEYS[2] versions, KEYS[3] index, KEYS[4] tombstones,
# KEYS[5] watermark, KEYS[6] changes, KEYS[7...] the value keys the script
# works on. Keys of the store (not Redis keys) travel in ARGV as UTF-8
# bytes; write scripts take the change window as their last ARGV.

_HELPERS = """
local function num(n)
  return string.format('%.0f', n)
end

-- Reserve n versions and return the last one. A missing sequence means a new
-- data set, or one Redis lost (a restart without persistence): it starts at
-- the server's clock in microseconds, above every version handed out before
-- (Redis cannot run a write per microsecond), so a handle pinned before the
-- loss never matches a version handed out after it.
local function bump(n)
  local last = redis.call('INCRBY', KEYS[1], n)
  if last == n then
    local now = redis.call('TIME')
    last = tonumber(now[1] .. string.format('%06d', tonumber(now[2]))) + n
    redis.call('SET', KEYS[1], num(last))
  end
  return last
end

-- Append a change to the feed, if anyone asked for a feed; value nil: a delete.
local feed = nil
local function record(key, value, version)
  if feed == nil then
    feed = redis.call('EXISTS', KEYS[6]) == 1
  end
  if not feed then
    return
  end
  if value then
    redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[#ARGV], version .. '-0', 'k', key, 'v', value)
  else
    redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[#ARGV], version .. '-0', 'k', key)
  end
end

local function put(vkey, key, value, version)
  redis.call('SET', vkey, value)
  if redis.call('HSET', KEYS[2], key, version) == 1 then
    redis.call('ZADD', KEYS[3], 0, key)
    redis.call('ZREM', KEYS[4], key)
  end
  record(key, value, version)
end

local function remove(vkey, key, version)
  redis.call('DEL', vkey)
  if redis.call('HDEL', KEYS[2], key) == 1 then
    redis.call('ZREM', KEYS[3], key)
  end
  redis.call('ZADD', KEYS[4], version, key)
  record(key, nil, version)
end

local function version_of(vkey, key)
  local version = redis.call('HGET', KEYS[2], key)
  if version then
    return tonumber(version)
  end
  if redis.call('EXISTS', vkey) == 1 then
    -- Created with raw Redis commands, never written through wasikv.
    return -1
  end
  version = redis.call('ZSCORE', KEYS[4], key)
  if version then
    return tonumber(version)
  end
  return tonumber(redis.call('GET', KEYS[5]) or '0')
end
"""

_GET_VERSIONED = (
    "#!lua flags=no-writes\n"
    + _HELPERS
    + """
return {redis.call('GET', KEYS[7]), num(version_of(KEYS[7], ARGV[1]))}
"""
)

# ARGV: key1, value1, key2, value2, ..., change window; a later duplicate wins (higher version).
_SET_MANY = (
    "#!lua\n"
    + _HELPERS
    + """
local n = #KEYS - 6
local first = bump(n) - n
for i = 1, n do
  put(KEYS[6 + i], ARGV[2 * i - 1], ARGV[2 * i], num(first + i))
end
return n
"""
)

# ARGV: tombstone window, key1, key2, ..., change window
# Each call prunes up to 2n+8 tombstones that aged out of the window, oldest
# first: deletes add one tombstone each, so the set stays bounded without a
# separate sweep. Deletes run when Redis is out of memory (as DEL does):
# they free the values, which is how an operator gets out of that state.
_DELETE_MANY = (
    "#!lua flags=allow-oom\n"
    + _HELPERS
    + """
local n = #KEYS - 6
local last = bump(n)
for i = 1, n do
  remove(KEYS[6 + i], ARGV[1 + i], num(last - n + i))
end
local cutoff = last - tonumber(ARGV[1])
local stale = redis.call('ZRANGE', KEYS[4], '-inf', '(' .. num(cutoff), 'BYSCORE',
  'LIMIT', 0, 2 * n + 8, 'WITHSCORES')
if #stale > 0 then
  for i = 1, #stale, 2 do
    redis.call('ZREM', KEYS[4], stale[i])
  end
  local newest = tonumber(stale[#stale])
  if newest > tonumber(redis.call('GET', KEYS[5]) or '0') then
    redis.call('SET', KEYS[5], num(newest))
  end
end
return n
"""
)

# ARGV: key, delta, change window. Reply {1, new value as text} or {0, Redis' error, current value}.
# The new value is read back with GET: Lua numbers are doubles and would
# round counters above 2**53.
_INCREMENT = (
    "#!lua\n"
    + _HELPERS
    + """
local done = redis.pcall('INCRBY', KEYS[7], ARGV[2])
if type(done) == 'table' and done.err then
  local current = false
  if redis.call('TYPE', KEYS[7]).ok == 'string' then
    current = redis.call('GET', KEYS[7])
  end
  return {0, done.err, current}
end
local version = num(bump(1))
if redis.call('HSET', KEYS[2], ARGV[1], version) == 1 then
  redis.call('ZADD', KEYS[3], 0, ARGV[1])
  redis.call('ZREM', KEYS[4], ARGV[1])
end
local value = redis.call('GET', KEYS[7])
record(ARGV[1], value, version)
return {1, value}
"""
)

# ARGV: key, expected version, value, change window. Reply 1 when swapped, 0 on conflict.
_SWAP = (
    "#!lua\n"
    + _HELPERS
    + """
if version_of(KEYS[7], ARGV[1]) ~= tonumber(ARGV[2]) then
  return 0
end
put(KEYS[7], ARGV[1], ARGV[3], num(bump(1)))
return 1
"""
)

# Start the feed if it is missing, and return the current sequence. The
# entry without a key marks where the feed starts: a reader whose cursor is
# older sees that it missed the changes before (they were never recorded).
_START_FEED = (
    "#!lua flags=allow-oom\n"
    + _HELPERS
    + """
local seq = redis.call('GET', KEYS[1])
if not seq then
  -- Start the sequence now, as bump would, so the first write follows on.
  local now = redis.call('TIME')
  seq = num(tonumber(now[1] .. string.format('%06d', tonumber(now[2]))))
  redis.call('SET', KEYS[1], seq)
end
if redis.call('EXISTS', KEYS[6]) == 0 then
  redis.call('XADD', KEYS[6], seq .. '-0', 'start', '1')
end
return seq
"""
)


class RedisStore(Store):
    """A store in one Redis database under a key prefix; safe across threads, processes and hosts.

    The constructor does not contact Redis: a host starts even when Redis is
    down, and its operations fail with `StoreError` until Redis is back. The
    first operation also checks that `legacy_prefix` (default: `prefix`)
    holds no data in the old layout, which `migrate_layout` moves.
    """

    atomic_batches: ClassVar[bool] = True
    change_notifications: ClassVar[bool] = True
    keeps_positions: ClassVar[bool] = True
    durable: ClassVar[bool] = True
    cross_process: ClassVar[bool] = True
    has_change_feed: ClassVar[bool] = True

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        db: int = 0,
        *,
        prefix: str | None = None,
        username: str | None = None,
        password: str | None = None,
        tls: bool = False,
        ssl_ca_certs: str | None = None,
        socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        tombstone_window: int = 100_000,
        change_window: int = DEFAULT_CHANGE_WINDOW,
        url: str | None = None,
        legacy_prefix: str | None = None,
    ) -> None:
        if not 0 < port < 65536:
            raise ValueError(f"port must be between 1 and 65535, not {port}")
        if db < 0:
            raise ValueError("db must not be negative")
        for name, seconds in (("socket_timeout", socket_timeout), ("connect_timeout", connect_timeout)):
            if not (math.isfinite(seconds) and seconds > 0):
                raise ValueError(f"{name} must be a positive number of seconds, not {seconds!r}")
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if tombstone_window < 1:
            raise ValueError("tombstone_window must be at least 1")
        if change_window < 1:
            raise ValueError("change_window must be at least 1")
        if ssl_ca_certs is not None and not tls:
            raise ValueError("ssl_ca_certs needs tls=True")
        if prefix is not None and SEPARATOR in prefix:
            raise ValueError(f"prefix {prefix!r} contains {SEPARATOR!r}, which ends prefixes in key names")
        self.host = host
        self.port = port
        self.db = db
        self.prefix = default_prefix(None) if prefix is None else prefix
        #: Where data of the old layout (before the separator) would be.
        self.legacy_prefix = self.prefix if legacy_prefix is None else legacy_prefix
        self.socket_timeout = float(socket_timeout)
        self.connect_timeout = float(connect_timeout)
        self.max_connections = max_connections
        self.tls = tls
        shown_host = f"[{host}]" if ":" in host else host
        #: Where the data lives, for messages: never includes credentials.
        self.address = f"{shown_host}:{port}/{db}"
        scheme = "rediss" if tls else "redis"
        self.url = url if url is not None else f"{scheme}://{self.address}"
        self._window = tombstone_window
        self._change_window = change_window
        self._closed = False
        self._layout_checked = False
        # What `wasikv kv migrate-redis` needs to find this store, for messages.
        self._migrate_arguments = f"--store {shlex.quote(self._bare_url(with_prefix=True))}"

        options: dict[str, Any] = {
            "host": host,
            "port": port,
            "db": db,
            "username": username,
            "password": password,
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.connect_timeout,
            "socket_keepalive": True,
            "health_check_interval": HEALTH_CHECK_INTERVAL,
            # No retries, for reads or writes. A command whose reply was lost
            # may have run: resending an INCRBY (or a script that bumps the
            # version) could apply it twice, so the caller gets a StoreError
            # that says the outcome is unknown instead. Connections the server
            # closed while idle need no retry: the pool notices them when it
            # hands them out and reconnects before sending anything.
            "retry": Retry(NoBackoff(), 0),
            "client_name": "wasikv",
        }
        if tls:
            options["connection_class"] = redis.SSLConnection
            if ssl_ca_certs is not None:
                options["ssl_ca_certs"] = ssl_ca_certs
        # One pool per store object; a host shares the store (and so the pool)
        # among all its components. Callers beyond max_connections wait for a
        # free connection instead of failing at once.
        self._pool = redis.BlockingConnectionPool(  # type: ignore[no-untyped-call]  # untyped in redis-py
            max_connections=max_connections, timeout=self.socket_timeout, **options
        )
        self._client = redis.Redis(connection_pool=self._pool)
        raw_prefix = (self.prefix + SEPARATOR).encode("utf-8")
        self._value_prefix = raw_prefix + b"k:"
        self._meta: tuple[bytes, ...] = tuple(raw_prefix + name for name in _META_NAMES)
        self._index = self._meta[2]
        self._feed = self._meta[5]
        self._positions = raw_prefix + b"positions"
        self._legacy_seq = self.legacy_prefix.encode("utf-8") + b"seq"
        self._get_versioned = self._client.register_script(_GET_VERSIONED)
        self._set_many = self._client.register_script(_SET_MANY)
        self._delete_many = self._client.register_script(_DELETE_MANY)
        self._increment = self._client.register_script(_INCREMENT)
        self._swap = self._client.register_script(_SWAP)
        self._start_feed = self._client.register_script(_START_FEED)

    def overlaps(self, other: Store) -> str | None:
        """Whether `other` is a Redis store on this server and database whose prefix nests with this one's.

        Servers compare by host name without case (every loopback address
        counting as one), port and database; prefixes overlap when one
        starts with the other, equal included. Their keys are disjoint (see
        the module docs), but equal prefixes are one store under two labels,
        and ``SCAN MATCH P*`` over a prefix (inspection, clean-up scripts)
        would sweep a nested one.
        """
        if not isinstance(other, RedisStore) or _server(other) != _server(self):
            return None
        if not (self.prefix.startswith(other.prefix) or other.prefix.startswith(self.prefix)):
            return None
        relation = "are equal" if self.prefix == other.prefix else "nest (one starts with the other)"
        return (
            f"use one Redis database ({self.address}) with prefixes {other.prefix!r} and {self.prefix!r}, "
            f"which {relation}; give each label a prefix that does not start with another's (without "
            "?prefix=, a label gets wasikv:LABEL:)"
        )

    @classmethod
    def from_url(cls, url: str, *, label: str | None = None) -> RedisStore:
        """Open the store a ``redis://`` or ``rediss://`` URL names (see the module docs)."""
        return _from_url(url, label)

    # -- reads -----------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        """The value of `key`, or None when it does not exist."""
        name = self._value_key(key)
        return cast("bytes | None", self._run("get", lambda: self._client.get(name)))

    def get_versioned(self, key: str) -> Versioned:
        """The value of `key` and its version, read together (the watermark for unknown keys)."""
        name, raw_key = self._value_key(key), _encode_key(key)
        value, version = self._run(
            "get", lambda: self._eval(self._get_versioned, [*self._meta, name], [raw_key])
        )
        return Versioned(value, int(version))

    def exists(self, key: str) -> bool:
        """Whether `key` exists (an empty value exists)."""
        name = self._value_key(key)
        return bool(self._run("exists", lambda: self._client.exists(name)))

    def list_keys(self, after: str | None, limit: int) -> list[str]:
        """Up to `limit` keys greater than `after`, in code-point order."""
        if limit <= 0:
            return []
        if after is None:
            start = b"-"
        elif type(after) is str:
            # A lone surrogate cannot be a key, but it still has a place in
            # code-point order, and surrogatepass keeps that order in bytes.
            start = b"(" + after.encode("utf-8", "surrogatepass")
        else:
            raise StoreError(f"redis store: cursor must be str, not {type(after).__name__}")
        count = min(limit, _MAX_LIMIT)

        def page() -> list[str]:
            members = self._client.zrangebylex(self._index, start, b"+", start=0, num=count)
            return [member.decode("utf-8") for member in cast("list[bytes]", members)]

        return self._run("list-keys", page)

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values of `keys`, in request order, from one MGET."""
        names = [self._value_key(key) for key in keys]
        if not names:
            return []
        return cast("list[bytes | None]", self._run("get-many", lambda: self._client.mget(names)))

    # -- writes ----------------------------------------------------------

    def set(self, key: str, value: bytes) -> None:
        """Create or replace `key`."""
        self.set_many([(key, value)])

    def delete(self, key: str) -> None:
        """Remove `key`, leaving a tombstone; a missing key is not an error."""
        self.delete_many([key])

    def increment(self, key: str, delta: int) -> int:
        """Add `delta` to the decimal counter at `key` with Redis' INCRBY; return the result."""
        name, raw_key = self._value_key(key), _encode_key(key)
        if type(delta) is not int or not S64_MIN <= delta <= S64_MAX:
            raise StoreError(f"increment: delta {delta!r} for key {key!r} is not an s64 integer")
        reply = self._run(
            "increment",
            lambda: self._eval(self._increment, [*self._meta, name], [raw_key, delta, self._change_window]),
            write=True,
        )
        if reply[0] == 1:
            return int(reply[1])
        refusal = bytes(reply[1]).decode("utf-8", "replace")
        if refusal.startswith("WRONGTYPE"):
            raise StoreError(f"increment: key {key!r} holds a Redis value that is not a string")
        # Redis refused the INCRBY and changed nothing; the shared helpers
        # name the reason with the same words as the other stores.
        add_delta(key, parse_counter(key, reply[2]), delta)
        raise StoreError(f"increment: Redis refused to add {delta} to key {key!r}: {refusal}")

    def swap(self, key: str, version: int, value: bytes) -> bool:
        """Set `key` to `value` only if its version is still `version`."""
        check_item("redis", key, value)
        name, raw_key = self._value_key(key), _encode_key(key)
        if type(version) is not int:
            raise StoreError(f"redis store: version must be int, not {type(version).__name__}")
        swapped = self._run(
            "swap",
            lambda: self._eval(
                self._swap, [*self._meta, name], [raw_key, version, value, self._change_window]
            ),
            write=True,
        )
        return bool(swapped == 1)

    def set_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Set every pair in one script (all or nothing); a later duplicate key wins."""
        names: list[bytes] = []
        args: list[bytes | int] = []
        for key, value in items:
            check_item("redis", key, value)
            names.append(self._value_key(key))
            args.append(_encode_key(key))
            args.append(value)
        args.append(self._change_window)
        if names:
            self._run("set", lambda: self._eval(self._set_many, [*self._meta, *names], args), write=True)

    def delete_many(self, keys: Sequence[str]) -> None:
        """Delete every key in one script (all or nothing)."""
        names = [self._value_key(key) for key in keys]
        if names:
            args: list[bytes | int] = [self._window, *(_encode_key(key) for key in keys), self._change_window]
            self._run(
                "delete", lambda: self._eval(self._delete_many, [*self._meta, *names], args), write=True
            )

    # -- change feed -----------------------------------------------------

    def changes(self, after: int, limit: int) -> list[Change]:
        """Up to `limit` changes with `seq > after` from the feed stream, oldest first.

        Starts the feed if it does not exist (yet, or any more: Redis lost
        its data); the changes before that were not recorded.
        """
        if limit <= 0:
            return []
        start = f"{max(after, 0) + 1}-0"

        def read() -> list[Any]:
            entries = self._client.xrange(self._feed, min=start, max="+", count=limit)
            if not entries and not self._client.exists(self._feed):
                self._eval(self._start_feed, list(self._meta), [])
            return cast("list[Any]", entries)

        return _changes(self._run("changes", read))

    def last_change(self) -> int:
        """The seq of the newest committed write; starts the feed if it is missing."""
        seq = self._run("changes", lambda: self._eval(self._start_feed, list(self._meta), []))
        return int(seq)

    def wait_for_change(self, after: int, timeout: float) -> bool:
        """Block (in XREAD) until a change with `seq > after` is in the feed, or `timeout` passes."""
        start = f"{max(after, 0)}-0"
        # Block for less than the socket timeout, or redis-py gives up reading.
        block = max(1, int(min(timeout, self.socket_timeout / 2) * 1000)) if timeout > 0 else None

        def wait() -> bool:
            found = self._client.xread({self._feed: start}, count=1, block=block)
            return bool(found)

        return self._run("changes", wait)

    # -- change-feed positions -------------------------------------------

    def load_position(self, name: str) -> int | None:
        """The position the change-feed reader `name` saved (in ``P|positions``), or None."""
        field = _position_field(name)
        saved = self._run("load-position", lambda: self._client.hget(self._positions, field))
        if saved is None:
            return None
        positions = self._positions.decode("utf-8")
        delete = shlex.join(["redis-cli", "-h", self.host, "-p", str(self.port), "-n", str(self.db)])
        delete += " " + shlex.join(["HDEL", positions, name])
        return loaded_position(f"redis store at {self.address}", name, saved, delete, text=True)

    def save_position(self, name: str, seq: int) -> None:
        """Save `seq` as the position of the change-feed reader `name` (not a change, not a key)."""
        field = _position_field(name, seq)
        self._run("save-position", lambda: self._client.hset(self._positions, field, seq), write=True)

    def close(self) -> None:
        """Disconnect every pooled connection; later calls fail."""
        self._closed = True
        try:
            self._pool.disconnect()
        except (RedisError, OSError):
            pass

    # -- internals -------------------------------------------------------

    def _value_key(self, key: str) -> bytes:
        return self._value_prefix + _encode_key(key)

    def _bare_url(self, *, with_prefix: bool) -> str:
        """This store's URL without credentials or options (which the operator adds)."""
        url = f"{'rediss' if self.tls else 'redis'}://{self.address}"
        return url + "?prefix=" + quote(self.prefix, safe=":{}") if with_prefix else url

    def _check_layout(self) -> None:
        # Once per store object: a prefix with data of the old layout must not
        # look empty, nor take writes beside data that reads cannot see. Data
        # in both layouts (an old wasikv process still writing after the
        # migration) is refused too: serving either half would hide the other.
        if not self._client.exists(self._legacy_seq):
            self._layout_checked = True
            return
        found = f"found the key {self._legacy_seq.decode(errors='replace')!r}"
        if self._client.exists(self._meta[0]):
            raise StoreError(
                f"redis store at {self.address}: prefix {self.legacy_prefix!r} holds data in both the "
                f"old layout of wasikv ({found}) and the new one: a wasikv process older than this one "
                "still writes to it; stop it, then merge or delete the old-layout keys by hand"
            )
        raise StoreError(
            f"redis store at {self.address}: prefix {self.legacy_prefix!r} holds data in the old "
            f"layout of wasikv, without {SEPARATOR!r} after the prefix ({found}); stop every wasikv "
            f"process that uses it and run `wasikv kv migrate-redis {self._migrate_arguments}` "
            "(add USER:PASSWORD@ to the URL if the server needs them)"
        )

    def _eval(self, script: Script, keys: list[bytes], args: Sequence[bytes | int]) -> Any:
        # EVALSHA straight away (Script.__call__ does more per call); NOSCRIPT
        # means nothing ran (Redis restarted or flushed its script cache), so
        # loading the script and sending it again is safe even for writes.
        try:
            return self._client.evalsha(script.sha, len(keys), *keys, *args)
        except NoScriptError:
            return script(keys=keys, args=args)

    def _run(
        self, operation: str, call: Callable[[], _T], *, write: bool = False, check_layout: bool = True
    ) -> _T:
        if self._closed:
            raise StoreError(f"redis store at {self.address}: the store is closed")
        try:
            if check_layout and not self._layout_checked:
                self._check_layout()
            return call()
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(
                f"redis store at {self.address}: {operation} failed: {self._describe(exc, write)}"
            ) from exc

    def _describe(self, exc: Exception, write: bool) -> str:
        text = str(exc) or type(exc).__name__
        unknown = "; the write may or may not have been applied" if write else ""
        if isinstance(exc, RedisTimeoutError):
            if "connecting" in text.lower():
                return f"could not connect within {self.connect_timeout:g}s ({text})"
            return f"Redis did not answer within {self.socket_timeout:g}s (timeout){unknown}"
        if isinstance(exc, BusyLoadingError):
            return "Redis is loading its dataset into memory; try again shortly"
        if isinstance(exc, AuthenticationError):
            return f"authentication failed: {text}"
        if isinstance(exc, RedisConnectionError):
            if text == "No connection available.":
                return (
                    f"all {self.max_connections} pooled connections stayed busy for "
                    f"{self.socket_timeout:g}s (raise max_connections)"
                )
            if "connecting to" in text:
                return f"cannot connect to Redis: {text}"
            return f"lost the connection to Redis: {text}{unknown}"
        if isinstance(exc, OutOfMemoryError):
            return f"Redis is out of memory (OOM, maxmemory reached); nothing was written: {text}"
        if isinstance(exc, ReadOnlyError):
            return "Redis is a read-only replica (READONLY); writes need the primary"
        if isinstance(exc, ResponseError):
            if text.startswith(("NOAUTH", "WRONGPASS")):
                return f"authentication failed: {text}"
            return f"Redis refused the command: {text}"
        if isinstance(exc, RedisError | OSError):
            return text
        if isinstance(exc, UnicodeDecodeError):
            return "the key index holds a member that is not UTF-8 (written around wasikv?)"
        return f"unexpected {type(exc).__name__}: {text}"


# -- prefixes: the start-up check and the old layout ----------------------------


def _server(store: RedisStore) -> tuple[str, int, int]:
    host = store.host.lower()
    try:
        if ipaddress.ip_address(host).is_loopback:
            host = "localhost"
    except ValueError:
        pass  # a host name
    return host, store.port, store.db


@dataclass(frozen=True)
class LayoutMigration:
    """What `migrate_layout` did."""

    #: Where the data was (old layout) and where it is now (``prefix|...``).
    legacy_prefix: str
    prefix: str
    #: How many Redis keys were renamed.
    moved: int
    #: Keys under ``legacy_prefix k:`` left in place: they contain the
    #: separator and the store never wrote them, so they are the keys of a
    #: longer prefix in the new layout.
    left: tuple[str, ...] = ()

    def summary(self) -> str:
        """One line for the operator."""
        if not self.moved:
            text = f"prefix {self.legacy_prefix!r}: nothing to migrate (no data in the old layout)"
        else:
            text = (
                f"prefix {self.legacy_prefix!r}: moved {self.moved} Redis keys to the new layout "
                f"under {self.prefix + SEPARATOR!r}"
            )
        if self.left:
            text += f"; left {len(self.left)} keys of a longer prefix in place (such as {self.left[0]!r})"
        return text


#: Keys asked for per SCAN call while migrating.
_SCAN_COUNT = 1000


def migrate_layout(store: RedisStore) -> LayoutMigration:
    """Rename a store's keys from the old layout (``P seq``, ``P k:{key}``, ...) to ``P|seq``, ...

    Run it while no wasikv process, of any version, uses the prefix: it is
    many commands, and a write between them (or an old process writing
    afterwards) leaves data behind. ``P seq`` is renamed last, so stores
    refuse to work until a run has finished; that also makes it safe to run
    again after an interruption, and a run with nothing left to move changes
    nothing. Value keys are found with ``SCAN``, so values written with raw
    Redis commands move too, except keys containing ``|`` that the store
    never wrote: those belong to a longer prefix in the new layout.

    Raises `StoreError` without renaming anything when the new layout
    already holds data (``P|seq`` exists) beside old-layout data, or when a
    longer prefix nested in this one (``P k:...``) still holds old-layout
    data, whose keys the old layout mixed with this store's values: migrate
    that prefix first. (Where the old layout nested two prefixes, the longer
    one's keys were also values of the shorter one; migrating the longer one
    first gives such a key to it.) A key that exists in both layouts stays
    where it is, and the run fails before renaming ``P seq``.
    """
    old = store.legacy_prefix.encode("utf-8")
    new = (store.prefix + SEPARATOR).encode("utf-8")
    old_values = old + b"k:"
    where = f"migrate-redis of prefix {store.legacy_prefix!r}"
    client = store._client

    def refuse(problem: str) -> StoreError:
        return StoreError(f"redis store at {store.address}: {where}: {problem}")

    def migrate() -> LayoutMigration:
        old_seq, new_seq = old + b"seq", new + b"seq"
        if client.exists(new_seq):
            if client.exists(old_seq):
                raise refuse(
                    f"both layouts hold data ({old_seq!r} and {new_seq!r} exist): a wasikv process "
                    "older than this one wrote after a migration; stop it, then merge or delete the "
                    "old-layout keys by hand"
                )
            return LayoutMigration(store.legacy_prefix, store.prefix, 0)
        pattern = _glob_escape(old_values) + b"*"
        # A hash under "P k:" ending in "versions" is another store's version
        # table (wasikv values are strings): the old layout of a nested prefix.
        for name in client.scan_iter(match=pattern, count=_SCAN_COUNT, _type="hash"):
            inner = cast("bytes", name)[len(old_values) :]
            if inner.endswith(b"versions") and _SEP not in inner:
                nested = (old_values + inner[: -len(b"versions")]).decode("utf-8", "replace")
                raise refuse(
                    f"the longer prefix {nested!r} holds data in the old layout too, and the old layout "
                    f"mixed its keys with those of {store.legacy_prefix!r}: migrate {nested!r} first"
                )
        moved = 0
        left: list[str] = []
        clashes: list[bytes] = []
        cursor = 0
        while True:
            cursor, page = client.scan(cursor, match=pattern, count=_SCAN_COUNT)
            keys = [name[len(old_values) :] for name in cast("list[bytes]", page)]
            foreign = _foreign_keys(client, old, new, [key for key in keys if _SEP in key])
            left.extend(key.decode("utf-8", "replace") for key in foreign)
            keys = [key for key in keys if key not in foreign]
            if keys:
                rename = client.pipeline(transaction=False)
                for key in keys:
                    rename.renamenx(old_values + key, new + b"k:" + key)
                for key, done in zip(keys, rename.execute(raise_on_error=False), strict=True):
                    if isinstance(done, ResponseError) and "no such key" in str(done).lower():
                        continue  # SCAN may list a key twice; it is moved already
                    if isinstance(done, Exception):
                        raise done
                    if done:
                        moved += 1
                    else:
                        clashes.append(old_values + key)
            if cursor == 0:
                break
        # The metadata after the values, and the sequence last: until it moves,
        # stores refuse the prefix, so an interrupted run is never served.
        for meta in (*_META_NAMES[1:], _META_NAMES[0]):
            if clashes and meta == _META_NAMES[0]:
                shown = ", ".join(repr(name.decode("utf-8", "replace")) for name in clashes[:3])
                raise refuse(
                    f"{len(clashes)} keys exist in both layouts (such as {shown}); moved the others but "
                    f"left {old_seq!r}, so stores keep refusing the prefix; merge or delete those keys "
                    "by hand and run the migration again"
                )
            if client.exists(old + meta):
                if client.renamenx(old + meta, new + meta):
                    moved += 1
                else:
                    clashes.append(old + meta)
        return LayoutMigration(store.legacy_prefix, store.prefix, moved, tuple(left))

    return store._run("migrate-redis", migrate, write=True, check_layout=False)


def _foreign_keys(client: redis.Redis, old: bytes, new: bytes, keys: list[bytes]) -> set[bytes]:
    """The `keys` (found under the old ``P k:``, holding the separator) the store never wrote."""
    if not keys:
        return set()
    check = client.pipeline(transaction=False)
    for key in keys:
        check.hexists(old + b"versions", key)
        check.hexists(new + b"versions", key)
    known = check.execute()
    return {key for i, key in enumerate(keys) if not (known[2 * i] or known[2 * i + 1])}


def _glob_escape(raw: bytes) -> bytes:
    """`raw` as a SCAN MATCH pattern that matches only itself."""
    for special in (b"\\", b"*", b"?", b"[", b"]"):
        raw = raw.replace(special, b"\\" + special)
    return raw


def _changes(entries: list[Any]) -> list[Change]:
    changes: list[Change] = []
    for entry_id, fields in entries:
        key = fields.get(b"k")
        if key is None:
            continue  # where the feed starts
        seq = int(bytes(entry_id).partition(b"-")[0])
        changes.append(Change(seq, key.decode("utf-8"), fields.get(b"v")))
    return changes


def _position_field(name: str, seq: int | None = None) -> bytes:
    if seq is None:
        check_position_name("redis", name)
    else:
        check_position("redis", name, seq)
    try:
        return name.encode("utf-8")
    except UnicodeEncodeError:
        raise StoreError(f"redis store: position name {name!r} is not valid Unicode text") from None


def _encode_key(key: str) -> bytes:
    if type(key) is not str:
        raise StoreError(f"redis store: key must be str, not {type(key).__name__}")
    try:
        return key.encode("utf-8")
    except UnicodeEncodeError:
        raise StoreError(f"redis store: key {key!r} is not valid Unicode text (lone surrogate)") from None


# -- URLs ----------------------------------------------------------------------


def _from_url(url: str, label: str | None) -> RedisStore:
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
    if scheme not in ("redis", "rediss"):
        raise InvalidStoreUrl(f"store URL {shown!r} is not a redis URL; {_ACCEPTED}")
    if not url[len(scheme) + 1 :].startswith("//"):
        raise InvalidStoreUrl(f"store URL {shown!r}: a redis URL starts with '{scheme}://'; {_ACCEPTED}")
    if parts.fragment:
        raise InvalidStoreUrl(f"store URL {shown!r}: a redis URL has no '#' part")
    try:
        username = unquote(parts.username, errors="strict") if parts.username else None
        password = unquote(parts.password, errors="strict") if parts.password is not None else None
        host = unquote(parts.hostname, errors="strict") if parts.hostname else DEFAULT_HOST
    except UnicodeDecodeError:
        raise InvalidStoreUrl(f"store URL {shown!r}: invalid percent-encoding") from None
    path = parts.path
    if path in ("", "/"):
        db = 0
    elif path[1:].isascii() and path[1:].isdigit() and len(path) < 12:
        db = int(path[1:])
    else:
        raise InvalidStoreUrl(
            f"store URL {shown!r}: the path must be a database number such as /0, not {path!r}"
        )
    options = parse_query(url, parts.query, _PARAMETERS)
    if "ssl_ca_certs" in options and scheme != "rediss":
        raise InvalidStoreUrl(f"store URL {shown!r}: ssl_ca_certs needs a rediss:// (TLS) URL")
    if SEPARATOR in options.get("prefix", ""):
        raise InvalidStoreUrl(
            f"store URL {shown!r}: the prefix {options['prefix']!r} contains {SEPARATOR!r}, which "
            "wasikv puts after the prefix in every key name; choose a prefix without it"
        )
    store = RedisStore(
        host,
        DEFAULT_PORT if port is None else port,
        db,
        prefix=options.get("prefix", default_prefix(label)),
        legacy_prefix=options.get("prefix", _legacy_default_prefix(label)),
        username=username,
        password=password,
        tls=scheme == "rediss",
        ssl_ca_certs=options.get("ssl_ca_certs"),
        socket_timeout=seconds_option(url, options, "socket_timeout", DEFAULT_SOCKET_TIMEOUT),
        connect_timeout=seconds_option(url, options, "connect_timeout", DEFAULT_CONNECT_TIMEOUT),
        max_connections=count_option(
            url, options, "max_connections", DEFAULT_MAX_CONNECTIONS, minimum=1, maximum=100_000
        ),
        url=url,
    )
    if store.legacy_prefix != store.prefix:
        # Only a label with "|" has a prefix of its own in the old layout.
        store._migrate_arguments = (
            f"--store {shlex.quote(store._bare_url(with_prefix=False))} --label {shlex.quote(str(label))}"
        )
    return store


def open_url(url: str, *, label: str | None = None) -> RedisStore:
    """Open the store a ``redis://`` or ``rediss://`` URL names (the registry's opener)."""
    return RedisStore.from_url(url, label=label)


def config_url(label: str, table: Mapping[str, object], base: object, state_dir: object) -> str:
    """`type = "redis"`: the `url` key, a redis:// or rediss:// URL."""
    url = table.get("url")
    if url is None:
        raise ValueError("'url' is missing; add url = \"redis://HOST:6379\"")
    if not isinstance(url, str) or not url.lower().startswith(("redis://", "rediss://")):
        raise ValueError("'url' must be a string starting with redis:// or rediss://")
    return url
