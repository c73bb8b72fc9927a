"""Moving a Redis store's data from the old layout (``P seq``) to the current one (``P|seq``).

Used only by ``wasikv kv migrate-redis``; a `RedisStore` that finds old-layout
data refuses to work and names that command. Why the layout changed:
docs/concepts/redis-store.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import redis
from redis.exceptions import ResponseError

from ..errors import StoreError
from .redis_scripts import META_NAMES, SEPARATOR

if TYPE_CHECKING:
    from .redis import RedisStore

_SEP = SEPARATOR.encode()


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
        for meta in (*META_NAMES[1:], META_NAMES[0]):
            if clashes and meta == META_NAMES[0]:
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
