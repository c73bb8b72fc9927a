"""wasikv guest SDK: wasi:keyvalue for Python components built with componentize-py.

Layers:

- `wasikv_sdk.wit`: the raw bindings generated from the WIT world
  `wasikv:app/command` (`wasikv_sdk.wit.imports.store`, `.atomics`, `.batch`,
  and the `wasikv_sdk.wit.exports.Run` protocol a command implements). WIT
  errors surface as `componentize_py_types.Err(value)`. The checked-in files
  are stubs; componentize-py generates the real bindings when it builds a
  component (see `componentize-py.toml`).
- `wasikv_sdk.key_value`: the Pythonic layer over those bindings
  (`open`, `open_default`, `Bucket`, `Cas`), raising the exceptions below.
  Guest-only: it imports the bindings.
- `wasikv_sdk.errors`: the exception hierarchy (`KeyValueError` and its
  subclasses `NoSuchStore`, `AccessDenied`, `StoreError`, `CasConflict`),
  shared with host-side Python code.
- `wasikv_sdk.protocol`: `BucketProtocol` and `CasHandle`, the structural
  types of the Pythonic API, which host-side buckets implement as well.

Importing this package (or `errors` / `protocol`) works on any CPython:
it imports neither `key_value` nor the bindings. In a guest, write::

    from wasikv_sdk import key_value
"""

from .errors import AccessDenied, CasConflict, KeyValueError, NoSuchStore, StoreError
from .protocol import BucketProtocol, CasHandle

__all__ = [
    "AccessDenied",
    "BucketProtocol",
    "CasConflict",
    "CasHandle",
    "KeyValueError",
    "NoSuchStore",
    "StoreError",
]
