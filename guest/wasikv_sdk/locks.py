"""A lease lock over compare-and-swap: one owner at a time, across processes and hosts.

Pure Python over `BucketProtocol`; the same `Lock` works in a guest and in a
host-side Python service sharing the store::

    from wasikv_sdk.locks import Lock

    with Lock(bucket, "report", ttl=30):
        ...  # one holder at a time, everywhere that shares the store

Storage: lock `name` is the key `"lock/" + name`, holding a JSON record
``{"owner": TOKEN or null, "expires": UNIX_SECONDS, "fence": N}``. A fresh
random owner token is drawn for every acquisition.

How it works: `acquire` pins the key with `cas`, and if the record is free
(missing, released, or past `expires`) swaps in its own token with
`expires = now + ttl`; if another acquirer wrote in between, the swap fails
and it retries. `release` swaps the record back to free, pinned to a read
that showed its own token; `refresh` extends `expires` the same way. Every
state change is a compare-and-swap (never get-then-set), so of any set of
processes racing for one version exactly one wins, under any interleaving.

Guarantees and limits:

- Mutual exclusion holds while the holder finishes within its lease: after
  `ttl` seconds (by the wall clock of whoever looks) the lock may be taken
  over. A holder whose lease ran out and was taken over learns it from
  `release()`/`refresh()`, which raise `NotLockOwner`. Use `fence` (a
  number that grows with every acquisition) to reject late writes of an
  expired holder, if the protected resource can check it.
- Clock skew: expiry compares one host's wall clock with a timestamp another
  host wrote. A host whose clock runs D seconds ahead sees leases expire D
  seconds early, so choose `ttl` > (longest critical section + worst skew).
  Skew never lets two processes take a *free* lock at once (that is decided
  by compare-and-swap alone).
- Crash: a holder that dies without releasing blocks others until its lease
  expires (`ttl`), then the next `acquire` takes the lock over.
- Store failure: errors propagate (`StoreError` etc.). If a write's reply is
  lost (e.g. Redis disconnect) the outcome is unknown: an `acquire` may have
  taken the lock without knowing it (it frees itself after `ttl`); a
  `release` may not have happened (same).
- No fairness or queueing: waiters spin with jittered exponential backoff,
  bounded by `tries`. A `Lock` object is one owner: share the name, not the
  object, between threads.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from types import TracebackType
from typing import Any, NamedTuple, Self

from ._cas import retry_cas
from ._clock import Backoff, now
from .coordination import CorruptRecord, LockError, LockExists, LockTimeout, NotLockOwner
from .errors import CasConflict
from .protocol import BucketProtocol

__all__ = ["KEY_PREFIX", "Lock", "LockError", "LockExists", "LockTimeout", "NotLockOwner"]

#: Every lock's key is KEY_PREFIX + its name.
KEY_PREFIX = "lock/"

#: How often `release`/`refresh` re-read after losing a race before concluding.
_OWNER_RETRIES = 10


class _Record(NamedTuple):
    owner: str | None
    expires: float
    fence: int

    def live(self, at: float) -> bool:
        return self.owner is not None and self.expires > at

    def encode(self) -> bytes:
        return json.dumps({"owner": self.owner, "expires": self.expires, "fence": self.fence}).encode()


def _decode(key: str, raw: bytes | None) -> _Record | None:
    if raw is None:
        return None
    try:
        data: Any = json.loads(raw)
        owner = data["owner"]
        expires = float(data["expires"])
        fence = int(data["fence"])
    except (ValueError, TypeError, KeyError) as exc:
        raise CorruptRecord(f"key {key!r} does not hold a lock record: {raw[:64]!r}") from exc
    if owner is not None and not isinstance(owner, str):
        raise CorruptRecord(f"key {key!r} holds a lock record with a bad owner: {raw[:64]!r}")
    return _Record(owner, expires, fence)


class Lock:
    """A named lease lock in `bucket`.

    Args:
        ttl: lease length in seconds; the lock frees itself this long after
            the last `acquire`/`refresh` if not released.
        tries: how many times `acquire` looks at the lock before giving up
            with `LockTimeout` (at least 1).
        sleep: the first pause between tries, in seconds; pauses double
            (jittered) up to `max_sleep`. The longest `acquire` waits is
            therefore bounded by about `tries * max_sleep`.
        fail_if_exists: make `acquire` raise `LockExists` at once when
            another owner holds the lock, instead of waiting.

    Use as a context manager (acquire on entry, release on exit), or call
    `acquire()`/`release()`. Not reentrant.
    """

    def __init__(
        self,
        bucket: BucketProtocol,
        name: str,
        *,
        ttl: float = 30.0,
        tries: int = 100,
        sleep: float = 0.01,
        max_sleep: float = 0.5,
        fail_if_exists: bool = False,
    ) -> None:
        if ttl <= 0:
            raise ValueError(f"ttl must be positive, not {ttl}")
        if tries < 1:
            raise ValueError(f"tries must be at least 1, not {tries}")
        if sleep < 0 or max_sleep < 0:
            raise ValueError("sleep and max_sleep must not be negative")
        self.bucket = bucket
        self.name = name
        self.key = KEY_PREFIX + name
        self.ttl = ttl
        self.tries = tries
        self.sleep = sleep
        self.max_sleep = max_sleep
        self.fail_if_exists = fail_if_exists
        self._token: str | None = None
        self._expires = 0.0
        self._fence = 0

    def __repr__(self) -> str:
        state = "held" if self._token is not None else "not held"
        return f"<Lock {self.name!r} {state}>"

    # -- inspection -------------------------------------------------------

    @property
    def token(self) -> str | None:
        """This object's owner token while it believes it holds the lock, else None."""
        return self._token

    @property
    def expires(self) -> float:
        """The wall-clock time this object's lease ends (0 when not held)."""
        return self._expires if self._token is not None else 0.0

    @property
    def fence(self) -> int:
        """The fencing number of this object's acquisition: larger for every later acquisition."""
        return self._fence

    def _read(self) -> _Record | None:
        return _decode(self.key, self.bucket.get(self.key))

    def locked(self) -> bool:
        """Whether anyone holds an unexpired lease right now (a read; may change at once)."""
        record = self._read()
        return record is not None and record.live(now())

    def owned(self) -> bool:
        """Whether this object holds an unexpired lease right now, per the store."""
        record = self._read()
        if self._token is None or record is None:
            return False
        return record.owner == self._token and record.live(now())

    # -- acquire ----------------------------------------------------------

    def _try_once(self) -> tuple[bool, _Record | None]:
        """One look: take the lock if it is free. Returns (taken, record seen)."""
        with self.bucket.cas(self.key) as handle:
            record = _decode(self.key, handle.current)
            at = now()
            if record is not None and record.live(at):
                return False, record
            token = secrets.token_hex(16)
            fence = (record.fence if record is not None else 0) + 1
            mine = _Record(token, at + self.ttl, fence)
            try:
                handle.swap(mine.encode())
            except CasConflict:
                return False, None
        self._token, self._expires, self._fence = token, mine.expires, fence
        return True, mine

    def _check_not_holding(self) -> None:
        if self._token is None:
            return
        if self.owned():
            raise LockError(f"lock {self.name!r} is already held by this Lock object (not reentrant)")
        self._token = None

    def try_acquire(self) -> bool:
        """Take the lock if it is free right now; one look, never waits. Returns whether it was taken."""
        self._check_not_holding()
        taken, _ = self._try_once()
        return taken

    def acquire(self) -> bool:
        """Take the lock, waiting (bounded by `tries`) while another owner holds it. Returns True.

        Raises:
            LockExists: `fail_if_exists` and another owner holds the lock.
            LockTimeout: another owner held it for all `tries` looks.
            LockError: this object already holds it.
            CorruptRecord: the key holds something that is not a lock record.
        """
        self._check_not_holding()
        backoff = Backoff(self.sleep, self.max_sleep)
        holder: _Record | None = None
        for attempt in range(self.tries):
            taken, seen = self._try_once()
            if taken:
                return True
            if seen is not None:
                holder = seen
                if self.fail_if_exists:
                    raise LockExists(f"lock {self.name!r} is held by another owner until {seen.expires:.3f}")
            if attempt + 1 < self.tries:
                backoff.wait()
        detail = f" (held until {holder.expires:.3f})" if holder is not None else ""
        raise LockTimeout(f"lock {self.name!r} not acquired after {self.tries} tries{detail}")

    # -- release / refresh ------------------------------------------------

    def _rewrite(self, action: str, make: Callable[[_Record], _Record]) -> _Record:
        """Swap the record for `make(record)`, pinned to a read that shows our token."""
        token = self._token
        if token is None:
            raise NotLockOwner(f"{action} of lock {self.name!r}: this Lock object does not hold it")

        def step(current: bytes | None) -> tuple[bytes, _Record]:
            record = _decode(self.key, current)
            if record is None or record.owner != token:
                self._token = None
                raise NotLockOwner(
                    f"{action} of lock {self.name!r}: the lease expired and another owner took it"
                    if record is not None and record.owner is not None
                    else f"{action} of lock {self.name!r}: the lock is no longer held by this object"
                )
            new = make(record)
            return new.encode(), new

        def give_up(_attempts: int) -> NotLockOwner:
            return NotLockOwner(f"{action} of lock {self.name!r}: the lock kept changing under this object")

        return retry_cas(
            lambda: self.bucket.cas(self.key), step, give_up=give_up, max_attempts=_OWNER_RETRIES
        )

    def release(self) -> None:
        """Free the lock.

        A lease that expired but was not taken over is still released.

        Raises:
            NotLockOwner: this object does not hold the lock (never acquired,
                already released, or expired and taken over by another owner).
        """
        self._rewrite("release", lambda record: _Record(None, 0.0, record.fence))
        self._token, self._expires = None, 0.0

    def refresh(self, ttl: float | None = None) -> float:
        """Extend the lease to `ttl` (default: the lock's ttl) seconds from now; returns the new expiry.

        Raises:
            NotLockOwner: as for `release`.
        """
        length = self.ttl if ttl is None else ttl
        if length <= 0:
            raise ValueError(f"ttl must be positive, not {length}")
        record = self._rewrite("refresh", lambda record: _Record(record.owner, now() + length, record.fence))
        self._expires = record.expires
        return record.expires

    # -- context manager --------------------------------------------------

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()
