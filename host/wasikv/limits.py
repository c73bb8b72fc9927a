"""Per-host limits that protect the host from oversized or runaway guests."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigError, LimitExceeded

#: The most bytes one call may move across the component boundary. wasmtime
#: traps a hostcall that copies more than its fuel allows (128 MiB of 48-byte
#: values, i.e. 2 796 202 list elements); this leaves room for the rest.
MAX_TRANSFER_BYTES = 2_621_440


@dataclass(frozen=True)
class Limits:
    """Limits applied to every guest call (and to host-side buckets).

    Each violation is reported as `LimitExceeded`, which guests receive as
    `error::other("... limit ...")`.
    """

    max_key_bytes: int = 4096
    max_value_bytes: int = 2 * 1024 * 1024
    max_batch_keys: int = 1000
    max_open_buckets: int = 256
    max_open_cas: int = 1024
    list_page_size: int = 1000

    def __post_init__(self) -> None:
        for name in (
            "max_key_bytes",
            "max_value_bytes",
            "max_batch_keys",
            "max_open_buckets",
            "max_open_cas",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"limit {name} must be at least 1")
        if self.list_page_size < 1:
            raise ConfigError("limit list_page_size must be at least 1")
        if self.max_value_bytes > MAX_TRANSFER_BYTES:
            raise ConfigError(
                f"limit max_value_bytes={self.max_value_bytes} exceeds {MAX_TRANSFER_BYTES}, the most"
                " wasmtime lets one call copy between host and guest"
            )

    def check_response_bytes(self, size: int) -> None:
        """Refuse a batch response that would carry more than `max_value_bytes` of values."""
        if size > self.max_value_bytes:
            raise LimitExceeded(
                f"batch response size limit: {size} bytes of values > max_value_bytes={self.max_value_bytes};"
                " fetch fewer keys per call"
            )

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
