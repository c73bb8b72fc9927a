"""Writing wasi:keyvalue results, and the one place errors become WIT errors."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

from .. import _canonical as cv
from ..errors import AccessDenied, KeyValueError, NoSuchStore
from ..stores.base import Store
from .session import KeyValueSession

log = logging.getLogger("wasikv")


def error_filler(exc: BaseException) -> cv.Filler:
    """The `wasi:keyvalue/store.error` value for an exception."""
    if isinstance(exc, NoSuchStore):
        return partial(cv.put_variant, case="no-such-store")
    if isinstance(exc, AccessDenied):
        return partial(cv.put_variant, case="access-denied")
    if isinstance(exc, KeyValueError):
        message = str(exc)
    else:
        # A bug or an unexpected backend failure: the guest still gets an
        # error value, never a trap, and the host keeps running.
        log.exception("unexpected error in a key-value operation")
        message = f"internal error: {type(exc).__name__}: {exc}"
    return lambda addr: cv.put_variant(addr, "other", lambda inner: cv.put_string(inner, message))


def put_err(results: int, exc: BaseException) -> None:
    """Write `err(error)` for `exc` into the result slot."""
    cv.put_result(results, False, error_filler(exc))


def guarded(op: Callable[[int, int, int], None]) -> Callable[[int, int, int], None]:
    """Run `op`; any exception it raises is written as `err(error)`.

    For functions whose error type is `wasi:keyvalue/store.error`.
    """

    def call(ctx: int, args: int, results: int) -> None:
        try:
            op(ctx, args, results)
        except Exception as exc:
            put_err(results, exc)

    call.__name__ = op.__name__
    return call


put_ok_unit = cv.put_ok_unit


put_ok_option_bytes = cv.put_ok_option_bytes


def bucket_arg(sessions: dict[int, KeyValueSession], ctx: int, args: int) -> tuple[KeyValueSession, Store]:
    """The calling instance's session and the store behind its `borrow<bucket>` first argument."""
    session = sessions[ctx]
    return session, session.bucket(cv.read_resource_rep(ctx, cv.arg(args, 0))).store


def read_keys(session: KeyValueSession, addr: int) -> list[str]:
    """A `list<string>` of keys, refused if the batch or any key is over its limit."""
    session.limits.check_batch(cv.list_len(addr))
    keys = cv.read_strings(addr)
    for key in keys:
        session.limits.check_key(key)
    return keys
