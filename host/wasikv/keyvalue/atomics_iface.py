"""`wasi:keyvalue/atomics`: increment and version-based compare-and-swap."""

from __future__ import annotations

from ..codec import Case
from ..host_functions import HostFunction, HostInterface, HostResource, Param
from ..wit_types import S64, ResultOf, VariantOf
from .session import KeyValueSession, OpenBucket, PinnedCas
from .wit import CAS, CAS_SELF, CAS_TAKEN, CAS_TYPE, ERROR, KEY, OPTION_BYTES, VALUE, bucket_param, wasi_error

NAME = "wasi:keyvalue/atomics@0.2.0-draft2"

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


def swap(session: KeyValueSession, cas: PinnedCas, value: bytes) -> None:
    if not cas.store.swap(cas.key, cas.version, value):
        raise CasFailed(session.pin_cas(cas.store, cas.key))


def cas_error(exc: BaseException) -> Case:
    """The `cas-error` value for an exception raised by `swap`."""
    if isinstance(exc, CasFailed):
        return Case("cas-failed", exc.rep)
    return Case("store-error", wasi_error(exc))


def _drop_cas(session: KeyValueSession, rep: int) -> None:
    session.cas.pop(rep, None)


INTERFACE = HostInterface(
    NAME,
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
    resources=(HostResource("cas", CAS_TYPE, _drop_cas),),
)
