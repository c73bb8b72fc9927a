"""Per-host limits that protect the host from oversized or runaway guests."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import LimitExceeded


@dataclass(frozen=True)
class Limits:
    """Limits applied to every guest call (and to host-side buckets).

    Each violation is reported as `LimitExceeded`, which guests receive as
    `error::other("... limit ...")`.
    """

    max_key_bytes: int = 4096
    max_value_bytes: int = 16 * 1024 * 1024
    max_batch_keys: int = 1000
    max_open_buckets: int = 256
    max_open_cas: int = 1024
    list_page_size: int = 1000

    def check_key(self, key: str) -> None:
        """Refuse keys longer than `max_key_bytes` (UTF-8)."""
        size = len(key.encode("utf-8"))
        if size > self.max_key_bytes:
            raise LimitExceeded(f"key size limit: {size} bytes > max_key_bytes={self.max_key_bytes}")

    def check_value(self, value: bytes) -> None:
        """Refuse values larger than `max_value_bytes`."""
        self.check_value_size(len(value))

    def check_value_size(self, size: int) -> None:
        """Refuse a value of `size` bytes if it exceeds `max_value_bytes`."""
        if size > self.max_value_bytes:
            raise LimitExceeded(f"value size limit: {size} bytes > max_value_bytes={self.max_value_bytes}")

    def check_batch(self, count: int) -> None:
        """Refuse batches with more than `max_batch_keys` entries."""
        if count > self.max_batch_keys:
            raise LimitExceeded(f"batch size limit: {count} keys > max_batch_keys={self.max_batch_keys}")
