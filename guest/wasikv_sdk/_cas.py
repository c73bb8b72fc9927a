"""The compare-and-swap retry loop: every read-modify-write of one key in the SDK and the host.

Pure Python (imports on both sides). `retry_cas` is the loop itself, over any
source of `CasHandle`s; `cas_loop` is its common form over a
`BucketProtocol`, bounded by a timeout with jittered backoff.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TypeAlias, TypeVar

from ._clock import Backoff, Deadline
from .errors import CasConflict
from .protocol import BucketProtocol, CasHandle

__all__ = ["Step", "cas_loop", "retry_cas"]

_T = TypeVar("_T")

#: Given the key's current value (None: missing), what to write (None: nothing) and what to return.
Step: TypeAlias = Callable[[bytes | None], tuple[bytes | None, _T]]


def retry_cas(
    pin: Callable[[], AbstractContextManager[CasHandle]],
    step: Step[_T],
    *,
    give_up: Callable[[int], Exception],
    max_attempts: int | None = None,
    deadline: Deadline | None = None,
    backoff: Backoff | None = None,
) -> _T:
    """Run `step(current)` on a handle from `pin()` until its write wins; return its result.

    `step` returns `(new_value, result)`; `new_value` None means "write
    nothing" and ends the loop at once. When the swap loses (`CasConflict`)
    the handle is closed and `step` runs again on a fresh one, so it must
    not have side effects; exceptions from `step` propagate with nothing
    written. Between attempts the loop waits `backoff` (never past
    `deadline`), if given.

    The loop ends with `give_up(attempts)` raised after `max_attempts`
    attempts (none when it is 0 or less), or after an attempt lost with
    `deadline` expired: at least one attempt is made whatever the deadline.

    Raises:
        ValueError: neither `max_attempts` nor `deadline` bounds the loop.
    """
    if max_attempts is None and deadline is None:
        raise ValueError("a compare-and-swap loop needs max_attempts or a deadline")
    attempts = 0
    while max_attempts is None or attempts < max_attempts:
        attempts += 1
        with pin() as handle:
            new_value, result = step(handle.current)
            if new_value is None:
                return result
            try:
                handle.swap(new_value)
            except CasConflict:
                pass
            else:
                return result
        if deadline is not None and deadline.expired():
            break
        if backoff is not None and attempts != max_attempts:
            backoff.wait(deadline)
    raise give_up(attempts)


def cas_loop(
    bucket: BucketProtocol,
    key: str,
    step: Step[_T],
    *,
    timeout: float,
    backoff: Backoff | None = None,
) -> _T:
    """Run `step(current)` against `key` until its write wins; return its result.

    `step` returns `(new_value, result)`; `new_value` None means "write
    nothing" and ends the loop at once. On a conflict `step` runs again with
    the newer value (so it must not have side effects), after a jittered
    backoff. Exceptions from `step` propagate with nothing written.

    Raises:
        CasConflict: every attempt lost a race for `timeout` seconds (at
            least one attempt is always made).
    """

    def give_up(attempts: int) -> CasConflict:
        return CasConflict(
            f"key {key!r} kept changing: {attempts} compare-and-swap attempts lost in {timeout:g}s"
        )

    return retry_cas(
        lambda: bucket.cas(key),
        step,
        give_up=give_up,
        deadline=Deadline(timeout),
        backoff=backoff or Backoff(0.001, 0.05),
    )
