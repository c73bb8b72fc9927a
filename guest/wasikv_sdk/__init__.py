"""wasikv guest SDK: wasi:keyvalue for Python components built with componentize-py.

Layers:

- `wasikv_sdk.wit`: the raw bindings generated from the WIT world
  `wasikv:app/command` (`wasikv_sdk.wit.imports.wasi_keyvalue_store`, `.atomics`, `.batch`,
  and the `wasikv_sdk.wit.exports.Run` protocol a command implements). WIT
  errors surface as `componentize_py_types.Err(value)`. The checked-in files
  are stubs; componentize-py generates the real bindings when it builds a
  component (see `componentize-py.toml`).
- `wasikv_sdk.key_value`: the Pythonic layer over those bindings
  (`open`, `open_default`, `Bucket`, `Cas`), raising the exceptions below.
  Guest-only: it imports the bindings.
- `wasikv_sdk.variables`: the component's application variables through
  `wasi:config/store` (`get`, `get_all`). Guest-only, like `key_value`.
- `wasikv_sdk.outbound`: outbound HTTP (`send(http.Request) -> http.Response`,
  `HttpError`) over `wasi:http/outgoing-handler`. Guest-only.
- `wasikv_sdk.errors`: the exception hierarchy (`KeyValueError` and its
  subclasses `NoSuchStore`, `AccessDenied`, `StoreError`, `CasConflict`;
  `VariableError` and its `NoSuchVariable`), shared with host-side Python code.
- `wasikv_sdk.protocol`: `BucketProtocol` and `CasHandle`, the structural
  types of the Pythonic API, which host-side buckets implement as well.
- Coordination primitives, pure Python over `BucketProtocol` (so they run
  in guests and in host-side Python alike): `wasikv_sdk.counters`
  (`Counter`, `all_counters`), `wasikv_sdk.locks` (`Lock`),
  `wasikv_sdk.state` (`StateDictionary`), `wasikv_sdk.cache` (`Cache`),
  and their errors in `wasikv_sdk.coordination` (`CoordinationError` and
  subclasses; not `KeyValueError`s).
- `wasikv_sdk.spin`: spin_sdk's modules (`http`, `key_value`, `variables`,
  `wit.imports`) for Spin apps ported by their imports, built for the world
  `wasikv:app/spin-http` or `wasikv:app/proxy`. Guest-only.
- `wasikv_sdk.http`: `Request`, `Response`, `StreamingResponse` and the
  `Handler` of HTTP guests, served as `Http` (`wasikv:app/http-trigger`) or
  through `incoming_handler` (`wasikv:app/proxy`, `wasikv:app/wasi-proxy`).

Importing this package (or `errors` / `protocol` / the primitives) works on any CPython:
it imports neither `key_value` nor the bindings. In a guest, write::

    from wasikv_sdk import key_value
"""

from . import _stdio
from .cache import Cache
from .coordination import (
    CacheComputeError,
    CacheWaitTimeout,
    CoordinationError,
    CorruptRecord,
    LockError,
    LockExists,
    LockTimeout,
    NotLockOwner,
    ResourceLockedError,
)
from .counters import Counter, all_counters
from .errors import (
    AccessDenied,
    CasConflict,
    KeyValueError,
    NoSuchStore,
    NoSuchVariable,
    StoreError,
    VariableError,
)
from .locks import Lock
from .protocol import BucketProtocol, CasHandle
from .state import StateDictionary

__all__ = [
    "AccessDenied",
    "BucketProtocol",
    "Cache",
    "CacheComputeError",
    "CacheWaitTimeout",
    "CasConflict",
    "CasHandle",
    "CoordinationError",
    "CorruptRecord",
    "Counter",
    "KeyValueError",
    "Lock",
    "LockError",
    "LockExists",
    "LockTimeout",
    "NoSuchStore",
    "NoSuchVariable",
    "NotLockOwner",
    "ResourceLockedError",
    "StateDictionary",
    "StoreError",
    "VariableError",
    "all_counters",
]

# Every guest that imports the SDK prints long lines whole (see _stdio).
_stdio.install()
