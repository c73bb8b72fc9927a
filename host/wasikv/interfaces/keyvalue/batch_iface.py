"""`wasi:keyvalue/batch`: several keys in one call, in the three shapes of `get-many`.

Spin's copy of draft2 answers every requested key with its value or none
(`list<tuple<string, option<list<u8>>>>`); upstream's draft2 and 0.2.0-draft
answer `none` for a missing key and the pair for a present one
(`list<option<tuple<string, list<u8>>>>`). Both keep the request's order.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...runtime.host_functions import HostFunction, HostInterface
from ...runtime.wit_types import STRING, ListOf, OptionOf, ResultOf, TupleOf, WitType
from .session import KeyValueSession, OpenBucket
from .wit import (
    BYTES,
    DRAFT_SHAPE,
    ERROR,
    KEY_VALUES_PARAM,
    KEYS_PARAM,
    OPTION_BYTES,
    SPIN_DRAFT2_SHAPE,
    UPSTREAM_DRAFT2_SHAPE,
    bucket_param,
    wasi_error,
)

#: Spin's shape of get-many's result: every requested key, with its value or none.
KEYED_VALUES = ListOf(TupleOf((STRING, OPTION_BYTES)))
#: Upstream's shape: none for a missing key, the pair for a present one.
PRESENT_PAIRS = ListOf(OptionOf(TupleOf((STRING, BYTES))))
BUCKET = bucket_param("bucket")


def _values(session: KeyValueSession, bucket: OpenBucket, keys: list[str]) -> list[bytes | None]:
    values = bucket.store.get_many(keys)
    session.limits.check_response_bytes(sum(len(v) for v in values if v is not None))
    return values


def get_many(session: KeyValueSession, bucket: OpenBucket, keys: list[str]) -> list[tuple[str, bytes | None]]:
    return list(zip(keys, _values(session, bucket, keys), strict=True))


def get_many_present(
    session: KeyValueSession, bucket: OpenBucket, keys: list[str]
) -> list[tuple[str, bytes] | None]:
    values = _values(session, bucket, keys)
    return [None if value is None else (key, value) for key, value in zip(keys, values, strict=True)]


def set_many(_session: KeyValueSession, bucket: OpenBucket, pairs: Sequence[tuple[str, bytes]]) -> None:
    bucket.store.set_many(pairs)


def delete_many(_session: KeyValueSession, bucket: OpenBucket, keys: list[str]) -> None:
    bucket.store.delete_many(keys)


def _interface(version: str, result: WitType, get_body: object, shape: str) -> HostInterface:
    return HostInterface(
        f"wasi:keyvalue/batch@{version}",
        (
            HostFunction("get-many", (BUCKET, KEYS_PARAM), ResultOf(result, ERROR), get_body, wasi_error),  # type: ignore[arg-type]
            HostFunction("set-many", (BUCKET, KEY_VALUES_PARAM), ResultOf(None, ERROR), set_many, wasi_error),
            HostFunction("delete-many", (BUCKET, KEYS_PARAM), ResultOf(None, ERROR), delete_many, wasi_error),
        ),
        shapes=frozenset({shape}),
    )


#: `wasi:keyvalue/batch@0.2.0-draft2` as Spin has it (wasikv's own WIT).
SPIN = _interface("0.2.0-draft2", KEYED_VALUES, get_many, SPIN_DRAFT2_SHAPE)
#: `wasi:keyvalue/batch@0.2.0-draft2` as upstream has it.
UPSTREAM = _interface("0.2.0-draft2", PRESENT_PAIRS, get_many_present, UPSTREAM_DRAFT2_SHAPE)
#: `wasi:keyvalue/batch@0.2.0-draft`.
DRAFT = _interface("0.2.0-draft", PRESENT_PAIRS, get_many_present, DRAFT_SHAPE)
