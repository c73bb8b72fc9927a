"""`wasi:keyvalue/atomics`: increment and version-based compare-and-swap, in both versions.

@0.2.0-draft2 increments an s64 counter by an s64 delta and has `cas`;
@0.2.0-draft increments by a u64 delta, returns a u64 and has no `cas`.
Both work on the same stored counter (ASCII decimal, s64): a u64 delta or
result outside what it can hold is `error::other`, never a wrap.
"""

from __future__ import annotations

from ...errors import StoreError
from ...runtime.codec import Case
from ...runtime.host_functions import HostFunction, HostInterface, HostResource, Param
from ...runtime.wit_types import S64, U64, ResultOf, VariantOf
from ...stores.base import S64_MAX
from .session import KeyValueSession, OpenBucket, PinnedCas
from .wit import (
    CAS,
    CAS_SELF,
    CAS_TAKEN,
    CAS_TYPE,
    DRAFT2_SHAPES,
    DRAFT_SHAPE,
    ERROR,
    KEY,
    OPTION_BYTES,
    VALUE,
    bucket_param,
    wasi_error,
)

CAS_ERROR = VariantOf((("store-error", ERROR), ("cas-failed", CAS)), name="cas-error")
BUCKET = bucket_param("bucket")


class CasFailed(Exception):
    """The key changed since the handle was made; `rep` is a fresh handle on it."""

    def __init__(self, rep: int) -> None:
        super().__init__("cas failed")
        self.rep = rep


def cas_new(session: KeyValueSession, bucket: OpenBucket, key: str) -> int:
    return session.pin_cas(bucket.store, key)


def cas_current(session: KeyValueSession, cas: PinnedCas) -> bytes | None:
    # The value as of now: if it changed since the handle was made, the swap
    # fails whatever the guest computes from it, so a fresh read is safe and
    # the host never holds a copy per handle.
    value = cas.store.get(cas.key)
    if value is not None:
        session.limits.check_value(value)
    return value


def increment(_session: KeyValueSession, bucket: OpenBucket, key: str, delta: int) -> int:
    return bucket.store.increment(key, delta)


def increment_unsigned(_session: KeyValueSession, bucket: OpenBucket, key: str, delta: int) -> int:
    """0.2.0-draft's increment: a u64 delta and a u64 result on the s64 counter."""
    if delta > S64_MAX:
        raise StoreError(f"increment: delta {delta} does not fit the stored counter (s64)")
    # Not store.increment: a result below zero must be refused before it is
    # written, not after (see `Store.increment_unsigned`).
    return bucket.store.increment_unsigned(key, delta)


def swap(session: KeyValueSession, cas: PinnedCas, value: bytes) -> None:
    if not cas.store.swap(cas.key, cas.version, value):
        raise CasFailed(session.pin_cas(cas.store, cas.key))


def cas_error(exc: BaseException) -> Case:
    """The `cas-error` value for an exception raised by `swap`."""
    if isinstance(exc, CasFailed):
        return Case("cas-failed", exc.rep)
    return Case("store-error", wasi_error(exc))


#: `wasi:keyvalue/atomics@0.2.0-draft2` (Spin's and upstream's: the same).
DRAFT2 = HostInterface(
    "wasi:keyvalue/atomics@0.2.0-draft2",
    (
        HostFunction("[static]cas.new", (BUCKET, KEY), ResultOf(CAS, ERROR), cas_new, wasi_error),
        HostFunction(
            "[method]cas.current", (CAS_SELF,), ResultOf(OPTION_BYTES, ERROR), cas_current, wasi_error
        ),
        HostFunction(
            "increment", (BUCKET, KEY, Param("delta", S64)), ResultOf(S64, ERROR), increment, wasi_error
        ),
        HostFunction("swap", (CAS_TAKEN, VALUE), ResultOf(None, CAS_ERROR), swap, cas_error),
    ),
    resources=(HostResource("cas", CAS_TYPE, KeyValueSession.drop_cas),),
    shapes=DRAFT2_SHAPES,
)

#: `wasi:keyvalue/atomics@0.2.0-draft`.
DRAFT = HostInterface(
    "wasi:keyvalue/atomics@0.2.0-draft",
    (
        HostFunction(
            "increment",
            (BUCKET, KEY, Param("delta", U64)),
            ResultOf(U64, ERROR),
            increment_unsigned,
            wasi_error,
        ),
    ),
    shapes=frozenset({DRAFT_SHAPE}),
)
