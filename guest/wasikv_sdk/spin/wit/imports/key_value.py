"""`spin_sdk.wit.imports.key_value`: Spin's key-value `Store` and its error classes."""

from ...key_value import (
    Error,
    Error_AccessDenied,
    Error_NoSuchStore,
    Error_Other,
    Error_StoreTableFull,
    Store,
)

__all__ = ["Error", "Error_AccessDenied", "Error_NoSuchStore", "Error_Other", "Error_StoreTableFull", "Store"]
