"""A store in Redis, shared by every host, process and machine that uses the same prefix.

Each store keeps its keys under ``P|`` (``P`` is the prefix, ``wasikv:{label}:``
by default) and writes with one Lua script per operation (`redis_scripts`), so
a `swap`'s compare and write cannot interleave with any other client. Writes
are never retried: a lost reply is a `StoreError` saying the outcome is unknown.
The key layout, why the separator, why Lua, and how failures are reported:
docs/concepts/redis-store.md. The old layout's migration: `redis_migration`.
"""

from __future__ import annotations

import functools
import ipaddress
import shlex
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar, cast
from urllib.parse import quote

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
from . import _shared
from ._url import count_option, parse_query, redact, seconds_option, split_server_url
from .base import (
    Change,
    LeaseState,
    Store,
    Versioned,
    add_delta,
    check_item,
    check_position,
    check_position_name,
    loaded_position,
    parse_counter,
)
from .redis_migration import LayoutMigration, migrate_layout
from .redis_scripts import META_NAMES, SEPARATOR, load

#: Every write, and `get_versioned`, is one of these (see redis_scripts/*.lua).
_SCRIPTS = {
    name: load(name)
    for name in (
        "get_versioned",
        "set_many",
        "delete_many",
        "increment",
        "swap",
        "start_feed",
        "acquire_lease",
        "renew_lease",
        "release_lease",
        "save_fenced",
        "lease_members",
    )
}

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
DEFAULT_CHANGE_WINDOW = _shared.DEFAULT_CHANGE_WINDOW

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
    has_leases: ClassVar[bool] = True

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
        tombstone_window: int = _shared.DEFAULT_TOMBSTONE_WINDOW,
        change_window: int = DEFAULT_CHANGE_WINDOW,
        url: str | None = None,
        legacy_prefix: str | None = None,
    ) -> None:
        _shared.check_port(port)
        if db < 0:
            raise ValueError("db must not be negative")
        _shared.check_seconds("socket_timeout", socket_timeout)
        _shared.check_seconds("connect_timeout", connect_timeout)
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        _shared.check_windows(tombstone_window, change_window)
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
        #: The URL for messages and logs (`redact`ed: the password is never shown).
        self.url = redact(url) if url is not None else f"{scheme}://{self.address}"
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
        self._meta: tuple[bytes, ...] = tuple(raw_prefix + name for name in META_NAMES)
        self._index = self._meta[2]
        self._feed = self._meta[5]
        self._positions = raw_prefix + b"positions"
        self._raw_prefix = raw_prefix
        self._leases = raw_prefix + b"leases"
        self._legacy_seq = self.legacy_prefix.encode("utf-8") + b"seq"
        self._get_versioned = self._client.register_script(_SCRIPTS["get_versioned"])
        self._set_many = self._client.register_script(_SCRIPTS["set_many"])
        self._delete_many = self._client.register_script(_SCRIPTS["delete_many"])
        self._increment = self._client.register_script(_SCRIPTS["increment"])
        self._swap = self._client.register_script(_SCRIPTS["swap"])
        self._start_feed = self._client.register_script(_SCRIPTS["start_feed"])
        self._lease_scripts = {
            name: self._client.register_script(_SCRIPTS[name])
            for name in ("acquire_lease", "renew_lease", "release_lease", "save_fenced", "lease_members")
        }

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
        _shared.check_cursor("redis", after)
        if after is None:
            start = b"-"
        else:
            # A lone surrogate cannot be a key, but it still has a place in
            # code-point order, and surrogatepass keeps that order in bytes.
            start = b"(" + after.encode("utf-8", "surrogatepass")
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
        _shared.check_delta(key, delta)
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
        _shared.check_version("redis", version)
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

    # -- leases (see `Store.acquire_lease`): one script each ------------------
    #
    # ``P|leases`` keeps each lease's newest token, claim and last holder (so
    # tokens grow across expiries); ``P|lease:{name}`` lives exactly as long
    # as the lease (SET PX, by the server's clock).

    def acquire_lease(self, name: str, holder: str, seconds: float) -> LeaseState:
        """Take the lease `name` for `seconds` unless another holder's key still lives."""
        ms = _shared.check_lease("redis", name, seconds)
        _shared.check_holder("redis", holder)
        raw = _shared.encode_name("redis", name)
        who = _shared.encode_name("redis", holder)
        reply = self._lease("acquire_lease", [self._leases, self._lease_key(raw)], [raw, who, ms])
        acquired, token, last, claimed = reply
        return LeaseState(bool(acquired), int(token), bytes(last).decode("utf-8", "replace"), int(claimed))

    def renew_lease(self, name: str, holder: str, token: int, seconds: float) -> bool:
        """Extend the lease if `token` is still its newest."""
        ms = _shared.check_lease("redis", name, seconds)
        _shared.check_token("redis", token)
        raw = _shared.encode_name("redis", name)
        return bool(self._lease("renew_lease", [self._leases, self._lease_key(raw)], [raw, token, ms]))

    def release_lease(self, name: str, token: int) -> None:
        """Delete the lease's key if `token` is still its newest."""
        _shared.check_token("redis", token)
        raw = _position_field(name)
        self._lease("release_lease", [self._leases, self._lease_key(raw)], [raw, token])

    def save_fenced(self, name: str, token: int, seq: int, claimed: int) -> bool:
        """Save the position and the claim in one script, only if `token` is the lease's newest."""
        raw = _position_field(name, seq)
        check_position("redis", name, claimed)
        _shared.check_token("redis", token)
        return bool(self._lease("save_fenced", [self._leases, self._positions], [raw, token, seq, claimed]))

    def lease_members(self, group: str, member: str, seconds: float) -> int:
        """Record `member` alive for `seconds` (by the server's clock); the members alive now."""
        ms = _shared.check_lease("redis", group, seconds)
        _shared.check_holder("redis", member)
        key = self._raw_prefix + b"members:" + _shared.encode_name("redis", group)
        return int(self._lease("lease_members", [key], [_shared.encode_name("redis", member), ms]))

    def _lease_key(self, raw_name: bytes) -> bytes:
        return self._raw_prefix + b"lease:" + raw_name

    def _lease(self, script: str, keys: list[bytes], args: Sequence[bytes | int]) -> Any:
        call = functools.partial(self._eval, self._lease_scripts[script], keys, args)
        return self._run(script.replace("_", "-"), call, write=True)

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
            raise _shared.closed(f"redis store at {self.address}")
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
        unknown = f"; {_shared.UNKNOWN_OUTCOME}" if write else ""
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
    return _shared.encode_name("redis", name)


def _encode_key(key: str) -> bytes:
    return _shared.encode_key("redis", key)


# -- URLs ----------------------------------------------------------------------


def _from_url(url: str, label: str | None) -> RedisStore:
    shown = redact(url)
    parts = split_server_url(url, "redis", ("redis", "rediss"), DEFAULT_HOST, _ACCEPTED)
    scheme, port = parts.scheme, parts.port
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
        parts.host,
        DEFAULT_PORT if port is None else port,
        db,
        prefix=options.get("prefix", default_prefix(label)),
        legacy_prefix=options.get("prefix", _legacy_default_prefix(label)),
        username=parts.username,
        password=parts.password,
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


__all__ = [
    "SEPARATOR",
    "LayoutMigration",
    "RedisStore",
    "config_url",
    "default_prefix",
    "migrate_layout",
    "open_url",
]
