"""Numbers the host and the guest SDK must agree on (pure Python: imports on both sides)."""

from __future__ import annotations

#: The most bytes of `list<u8>` one call may carry between host and guest.
#: wasmtime traps a host call that copies more than its budget (128 MiB of
#: 48-byte values, i.e. 2 796 202 list elements, one per byte); this leaves
#: room for the rest of the call. The host never sends more; the SDK refuses
#: to send more, since the host would never see the call.
HOSTCALL_BUDGET_BYTES = 2_621_440

#: The range of a stored counter (ASCII decimal text), as Redis' INCRBY has it.
S64_MIN = -(2**63)
S64_MAX = 2**63 - 1

__all__ = ["HOSTCALL_BUDGET_BYTES", "S64_MAX", "S64_MIN"]
