"""What the wasi:keyvalue interfaces share: WIT types, parameter kinds, the error mapping.

Parameter kinds are `Param`s whose conversion applies wasikv's checks before
a body runs: a bucket handle becomes its open bucket, keys and values are
checked against the host's `Limits`. Every exception a body raises becomes a
`wasi:keyvalue/store.error` in `wasi_error`, the one place that mapping
lives.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ...errors import AccessDenied, KeyValueError, NoSuchStore
from ...runtime.codec import Case
from ...runtime.host_functions import Param
from ...runtime.wit_types import (
    STRING,
    U8,
    Borrow,
    ListOf,
    OptionOf,
    Own,
    TupleOf,
    VariantOf,
)
from .session import KeyValueSession, OpenBucket, PinnedCas

log = logging.getLogger("wasikv")

#: The three shapes of wasi:keyvalue guests are built against. Spin's copy of
#: draft2 and upstream's differ only in `batch.get-many`'s result; 0.2.0-draft
#: has u64 increments and cursors and no compare-and-swap.
SPIN_DRAFT2_SHAPE = "wasi:keyvalue@0.2.0-draft2 (Spin)"
UPSTREAM_DRAFT2_SHAPE = "wasi:keyvalue@0.2.0-draft2 (upstream)"
DRAFT_SHAPE = "wasi:keyvalue@0.2.0-draft"
DRAFT2_SHAPES = frozenset({SPIN_DRAFT2_SHAPE, UPSTREAM_DRAFT2_SHAPE})

#: Host type ids of the resources (any distinct 32-bit numbers). Every shape
#: shares them: a bucket is a bucket whichever WIT the guest was built with.
BUCKET_TYPE = 0x6B76_0001
CAS_TYPE = 0x6B76_0002

BYTES = ListOf(U8)
OPTION_BYTES = OptionOf(BYTES)
KEYS = ListOf(STRING)
KEY_VALUES = ListOf(TupleOf((STRING, BYTES)))
BUCKET = Own("bucket")
CAS = Own("cas")

#: `wasi:keyvalue/store.error`.
ERROR = VariantOf((("no-such-store", None), ("access-denied", None), ("other", STRING)), name="error")


def wasi_error(exc: BaseException) -> Case:
    """The `error` value for an exception raised while serving a call."""
    if isinstance(exc, NoSuchStore):
        return Case("no-such-store")
    if isinstance(exc, AccessDenied):
        return Case("access-denied")
    if isinstance(exc, KeyValueError):
        return Case("other", str(exc))
    # A bug or an unexpected backend failure: the guest still gets an error
    # value, never a trap, and the host keeps running.
    log.error("unexpected error in a key-value operation", exc_info=exc)
    return Case("other", f"internal error: {type(exc).__name__}: {exc}")


def _bucket(session: KeyValueSession, rep: int) -> OpenBucket:
    # The table itself, not `session.bucket`: one call less on every bucket method.
    return session.buckets[rep]


def _key(session: KeyValueSession, key: str) -> str:
    session.limits.check_key(key)
    return key


def _value(session: KeyValueSession, value: bytes) -> bytes:
    session.limits.check_value(value)
    return value


def _keys(session: KeyValueSession, keys: list[str]) -> list[str]:
    session.limits.check_batch(len(keys))
    for key in keys:
        session.limits.check_key(key)
    return keys


def _key_values(session: KeyValueSession, pairs: Sequence[tuple[str, bytes]]) -> Sequence[tuple[str, bytes]]:
    session.limits.check_batch(len(pairs))
    for key, value in pairs:
        session.limits.check_key(key)
        session.limits.check_value(value)
    return pairs


def _cas(session: KeyValueSession, rep: int) -> PinnedCas:
    return session.cas[rep]


def _taken_cas(session: KeyValueSession, rep: int) -> PinnedCas:
    # `own<cas>`: the guest gives the handle up, so it leaves the table
    # whatever happens next.
    return session.cas.pop(rep)


def bucket_param(name: str) -> Param:
    """A `borrow<bucket>` parameter, given to the body as its `OpenBucket`."""
    return Param(name, Borrow("bucket"), _bucket)


KEY = Param("key", STRING, _key)
VALUE = Param("value", BYTES, _value)
KEYS_PARAM = Param("keys", KEYS, _keys)
KEY_VALUES_PARAM = Param("key-values", KEY_VALUES, _key_values)
CAS_SELF = Param("self", Borrow("cas"), _cas)
CAS_TAKEN = Param("cas", CAS, _taken_cas)
