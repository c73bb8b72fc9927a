"""`wasi:keyvalue/store`: open buckets and single-key operations, in both versions.

@0.2.0-draft2 and @0.2.0-draft differ only in `list-keys`: string cursors
(which carry the key) against u64 cursors (numbers standing for it, see
`cursor.NumberedCursors`). Both walk the keys in the same order, each once.
"""

from __future__ import annotations

from ...runtime.host_functions import HostFunction, HostInterface, HostResource, Param
from ...runtime.wit_types import (
    BOOL,
    STRING,
    U64,
    ListOf,
    OptionOf,
    RecordOf,
    ResultOf,
    WitType,
)
from . import cursor
from .session import KeyValueSession, OpenBucket
from .wit import (
    BUCKET,
    BUCKET_TYPE,
    DRAFT2_SHAPES,
    DRAFT_SHAPE,
    ERROR,
    KEY,
    OPTION_BYTES,
    VALUE,
    bucket_param,
    wasi_error,
)

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


def _page(session: KeyValueSession, bucket: OpenBucket, after: str | None) -> tuple[list[str], str | None]:
    """One page of keys after `after`, and the key the next page starts after (None at the end)."""
    page_size = session.limits.list_page_size
    keys = bucket.store.list_keys(after, page_size + 1)
    if len(keys) > page_size:
        return keys[:page_size], keys[page_size - 1]
    return keys, None


def list_keys(session: KeyValueSession, bucket: OpenBucket, raw: str | None) -> tuple[list[str], str | None]:
    keys, last = _page(session, bucket, None if raw is None else cursor.decode(raw))
    return keys, None if last is None else cursor.encode(last)


def list_keys_numbered(
    session: KeyValueSession, bucket: OpenBucket, number: int | None
) -> tuple[list[str], int | None]:
    after = None if number is None else session.cursors.resolve(number, bucket.label)
    keys, last = _page(session, bucket, after)
    return keys, None if last is None else session.cursors.issue(bucket.label, last)


def _call(name: str, params: tuple[Param, ...], ok: WitType | None, body: object) -> HostFunction:
    return HostFunction(name, params, ResultOf(ok, ERROR), body, wasi_error)  # type: ignore[arg-type]


def _interface(
    version: str, cursor_type: WitType, keys_body: object, shapes: frozenset[str]
) -> HostInterface:
    response = RecordOf((("keys", ListOf(STRING)), ("cursor", OptionOf(cursor_type))), name="key-response")
    return HostInterface(
        f"wasi:keyvalue/store@{version}",
        (
            _call("open", (Param("identifier", STRING),), BUCKET, open_),
            _call("[method]bucket.get", (SELF, KEY), OPTION_BYTES, get),
            _call("[method]bucket.set", (SELF, KEY, VALUE), None, set_),
            _call("[method]bucket.delete", (SELF, KEY), None, delete),
            _call("[method]bucket.exists", (SELF, KEY), BOOL, exists),
            _call(
                "[method]bucket.list-keys",
                (SELF, Param("cursor", OptionOf(cursor_type))),
                response,
                keys_body,
            ),
        ),
        resources=(HostResource("bucket", BUCKET_TYPE, KeyValueSession.drop_bucket),),
        shapes=shapes,
    )


#: `wasi:keyvalue/store@0.2.0-draft2` (Spin's and upstream's: the same).
DRAFT2 = _interface("0.2.0-draft2", STRING, list_keys, DRAFT2_SHAPES)
#: `wasi:keyvalue/store@0.2.0-draft`.
DRAFT = _interface("0.2.0-draft", U64, list_keys_numbered, frozenset({DRAFT_SHAPE}))
