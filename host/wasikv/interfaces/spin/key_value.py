"""`fermyon:spin/key-value@2.0.0`: the key-value stores of Spin 2 and 3 apps, on wasikv's.

What spin-sdk 3.x (`spin_sdk.key_value`), Spin's JS SDK
(`@spinframework/spin-kv`) and Spin's Rust SDK 3 to 5 (`spin_sdk::key_value`)
import. A `store` handle is a bucket of the instance's `KeyValueSession`, as
a `wasi:keyvalue` bucket is: it opens only the labels the component is
granted (the manifest's `key_value_stores`), counts against
`Limits.max_open_buckets` (256, Spin's store table capacity too) and its
keys and values are checked against the same limits. The operations are
wasi:keyvalue's bodies (`keyvalue.store_iface`); Spin's WIT differs in two
places: `get-keys` returns every key in one list, and opening one store too
many is `store-table-full`.
"""

from __future__ import annotations

from ...errors import LimitExceeded
from ...limits import MAX_TRANSFER_BYTES
from ...runtime.codec import Case
from ...runtime.host_functions import HostFunction, HostInterface, HostResource, Param
from ...runtime.wit_types import BOOL, STRING, Borrow, ListOf, Own, ResultOf, VariantOf, WitType
from ..keyvalue import store_iface
from ..keyvalue.session import KeyValueSession, OpenBucket
from ..keyvalue.wit import KEY, OPTION_BYTES, VALUE, wasi_error

#: The interface's name, as components import it.
NAME = "fermyon:spin/key-value@2.0.0"

#: Host type id of `store` handles: not wasi:keyvalue's bucket id, so that a
#: component importing both cannot pass one kind of handle as the other.
STORE_TYPE = 0x6B76_0003

#: `fermyon:spin/key-value.error`.
ERROR = VariantOf(
    (("store-table-full", None), ("no-such-store", None), ("access-denied", None), ("other", STRING)),
    name="error",
)

#: What one key costs `get-keys` beyond its UTF-8 bytes (a string's pointer and length in guest memory).
_KEY_OVERHEAD = 8


def spin_error(exc: BaseException) -> Case:
    """The `error` value for an exception raised while serving a call.

    Spin's cases are wasi:keyvalue's and `store-table-full`, under the same
    names, so the mapping is wasi:keyvalue's (`wit.wasi_error`).
    """
    return wasi_error(exc)


def open_error(exc: BaseException) -> Case:
    """`spin_error`, but a handle table at its limit (the only limit `open` checks) is `store-table-full`."""
    if isinstance(exc, LimitExceeded):
        return Case("store-table-full")
    return spin_error(exc)


def get_keys(session: KeyValueSession, bucket: OpenBucket) -> list[str]:
    """Every key of the store, ascending, read a page at a time.

    Refused with `LimitExceeded` (`other`) once the keys take more than one
    call can carry (`MAX_TRANSFER_BYTES`): Spin's WIT has no cursor, and a
    guest that needs more must page with wasi:keyvalue's `list-keys`.
    """
    page_size = session.limits.list_page_size
    keys: list[str] = []
    size = 0
    after: str | None = None
    while True:
        page = bucket.store.list_keys(after, page_size)
        size += sum(len(key.encode("utf-8")) + _KEY_OVERHEAD for key in page)
        if size > MAX_TRANSFER_BYTES:
            raise LimitExceeded(
                f"get-keys size limit: the keys of store {bucket.label!r} take more than "
                f"{MAX_TRANSFER_BYTES} bytes; list them in pages with wasi:keyvalue/store's list-keys"
            )
        keys += page
        if len(page) < page_size:
            return keys
        after = page[-1]


SELF = Param("self", Borrow("store"), KeyValueSession.bucket)


def _call(name: str, params: tuple[Param, ...], ok: WitType | None, body: object) -> HostFunction:
    return HostFunction(name, params, ResultOf(ok, ERROR), body, spin_error)  # type: ignore[arg-type]


#: `fermyon:spin/key-value@2.0.0`.
V2 = HostInterface(
    NAME,
    (
        HostFunction(
            "[static]store.open",
            (Param("label", STRING),),
            ResultOf(Own("store"), ERROR),
            store_iface.open_,
            open_error,
        ),
        _call("[method]store.get", (SELF, KEY), OPTION_BYTES, store_iface.get),
        _call("[method]store.set", (SELF, KEY, VALUE), None, store_iface.set_),
        _call("[method]store.delete", (SELF, KEY), None, store_iface.delete),
        _call("[method]store.exists", (SELF, KEY), BOOL, store_iface.exists),
        _call("[method]store.get-keys", (SELF,), ListOf(STRING), get_keys),
    ),
    resources=(HostResource("store", STORE_TYPE, KeyValueSession.drop_bucket),),
)

__all__ = ["ERROR", "NAME", "STORE_TYPE", "V2", "get_keys", "open_error", "spin_error"]
