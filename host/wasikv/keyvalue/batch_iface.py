"""`wasi:keyvalue/batch`: several keys in one call."""

from __future__ import annotations

from collections.abc import Sequence

from ..host_functions import HostFunction, HostInterface
from ..wit_types import STRING, ListOf, ResultOf, TupleOf
from .session import KeyValueSession, OpenBucket
from .wit import ERROR, KEY_VALUES_PARAM, KEYS_PARAM, OPTION_BYTES, bucket_param, wasi_error

NAME = "wasi:keyvalue/batch@0.2.0-draft2"

#: Spin's shape of get-many's result: every requested key, with its value or none.
KEYED_VALUES = ListOf(TupleOf((STRING, OPTION_BYTES)))
BUCKET = bucket_param("bucket")


def get_many(session: KeyValueSession, bucket: OpenBucket, keys: list[str]) -> list[tuple[str, bytes | None]]:
    values = bucket.store.get_many(keys)
    session.limits.check_response_bytes(sum(len(v) for v in values if v is not None))
    return list(zip(keys, values, strict=True))


def set_many(_session: KeyValueSession, bucket: OpenBucket, pairs: Sequence[tuple[str, bytes]]) -> None:
    bucket.store.set_many(pairs)


def delete_many(_session: KeyValueSession, bucket: OpenBucket, keys: list[str]) -> None:
    bucket.store.delete_many(keys)


INTERFACE = HostInterface(
    NAME,
    (
        HostFunction("get-many", (BUCKET, KEYS_PARAM), ResultOf(KEYED_VALUES, ERROR), get_many, wasi_error),
        HostFunction("set-many", (BUCKET, KEY_VALUES_PARAM), ResultOf(None, ERROR), set_many, wasi_error),
        HostFunction("delete-many", (BUCKET, KEYS_PARAM), ResultOf(None, ERROR), delete_many, wasi_error),
    ),
)
