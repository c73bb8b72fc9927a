"""A bounded compare-and-swap retry loop with backoff, over `BucketProtocol`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ._clock import Backoff, Deadline
from .errors import CasConflict
from .protocol import BucketProtocol

__all__ = ["cas_loop"]

_T = TypeVar("_T")


def cas_loop(
    bucket: BucketProtocol,
    key: str,
    step: Callable[[bytes | None], tuple[bytes | None, _T]],
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
    deadline = Deadline(timeout)
    pause = backoff or Backoff(0.001, 0.05)
    attempts = 0
    while True:
        attempts += 1
        with bucket.cas(key) as handle:
            new_value, result = step(handle.current)
            if new_value is None:
                return result
            try:
                handle.swap(new_value)
            except CasConflict:
                if deadline.expired():
                    raise CasConflict(
                        f"key {key!r} kept changing: {attempts} compare-and-swap attempts lost"
                        f" in {timeout:g}s"
                    ) from None
            else:
                return result
        pause.wait(deadline)
