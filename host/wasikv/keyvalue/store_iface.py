"""`wasi:keyvalue/store`: open buckets and single-key operations."""

from __future__ import annotations

from ..host_functions import HostFunction, HostInterface, HostResource, Param
from ..wit_types import BOOL, STRING, ListOf, OptionOf, RecordOf, ResultOf
from . import cursor
from .session import KeyValueSession, OpenBucket
from .wit import BUCKET, BUCKET_TYPE, ERROR, KEY, OPTION_BYTES, VALUE, bucket_param, wasi_error

NAME = "wasi:keyvalue/store@0.2.0-draft2"

KEY_RESPONSE = RecordOf((("keys", ListOf(STRING)), ("cursor", OptionOf(STRING))), name="key-response")
SELF = bucket_param("self")


def open_(session: KeyValueSession, label: str) -> int:
    return session.open_bucket(label)


def get(session: KeyValueSession, bucket: OpenBucket, key: str) -> bytes | None:
    value = bucket.store.get(key)
    if value is not None:
        # A value written by another client may exceed what one call can carry.
        session.limits.check_value(value)
    return value


def set_(_session: KeyValueSession, bucket: OpenBucket, key: str, value: bytes) -> None:
    bucket.store.set(key, value)


def delete(_session: KeyValueSession, bucket: OpenBucket, key: str) -> None:
    bucket.store.delete(key)


def exists(_session: KeyValueSession, bucket: OpenBucket, key: str) -> bool:
    return bucket.store.exists(key)


def list_keys(session: KeyValueSession, bucket: OpenBucket, raw: str | None) -> tuple[list[str], str | None]:
    page_size = session.limits.list_page_size
    keys = bucket.store.list_keys(None if raw is None else cursor.decode(raw), page_size + 1)
    if len(keys) > page_size:
        return keys[:page_size], cursor.encode(keys[page_size - 1])
    return keys, None


def _drop_bucket(session: KeyValueSession, rep: int) -> None:
    session.buckets.pop(rep, None)


def _call(name: str, params: tuple[Param, ...], ok: object, body: object) -> HostFunction:
    return HostFunction(name, params, ResultOf(ok, ERROR), body, wasi_error)  # type: ignore[arg-type]


INTERFACE = HostInterface(
    NAME,
    (
        _call("open", (Param("identifier", STRING),), BUCKET, open_),
        _call("[method]bucket.get", (SELF, KEY), OPTION_BYTES, get),
        _call("[method]bucket.set", (SELF, KEY, VALUE), None, set_),
        _call("[method]bucket.delete", (SELF, KEY), None, delete),
        _call("[method]bucket.exists", (SELF, KEY), BOOL, exists),
        _call("[method]bucket.list-keys", (SELF, Param("cursor", OptionOf(STRING))), KEY_RESPONSE, list_keys),
    ),
    resources=(HostResource("bucket", BUCKET_TYPE, _drop_bucket),),
)
