"""Per-host limits that protect the host from oversized or runaway guests."""

from __future__ import annotations

from dataclasses import dataclass

from wasikv_sdk.constants import HOSTCALL_BUDGET_BYTES

from .errors import ConfigError, LimitExceeded

#: The most bytes one call may move across the component boundary (see
#: `wasikv_sdk.constants`, which the guest SDK checks against too).
MAX_TRANSFER_BYTES = HOSTCALL_BUDGET_BYTES

#: Seconds an HTTP request (or a watcher call) may run under `wasikv up` by default.
DEFAULT_REQUEST_TIMEOUT = 30.0
#: Seconds a client has to send a request's headers, and its whole body, by default.
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 30.0
#: Seconds an idle keep-alive connection is kept, and the most connections at once.
DEFAULT_KEEP_ALIVE_TIMEOUT = 5.0
DEFAULT_MAX_CONNECTIONS = 512
#: A client's default share of the connections: this fraction of them, at least
#: `MIN_CONNECTIONS_PER_CLIENT` (or all, if there are fewer).
CONNECTIONS_PER_CLIENT_SHARE = 4
MIN_CONNECTIONS_PER_CLIENT = 8


def default_connections_per_client(max_connections: int) -> int:
    """The connections one client may hold at once by default: a quarter of `max_connections`, at least 8."""
    return max(
        max_connections // CONNECTIONS_PER_CLIENT_SHARE, min(MIN_CONNECTIONS_PER_CLIENT, max_connections)
    )


#: Bytes of each output stream (stdout, stderr) of one trigger instance (an HTTP
#: request, a watcher batch) that the host keeps and logs by default; the rest is
#: counted, dropped and reported in one "output truncated" line.
DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024
#: The most headers a guest's HTTP response may have, and their most bytes in all
#: (names and values, plus 4 per header for ": " and CRLF), as a proxy would bound them.
MAX_RESPONSE_HEADERS = 256
MAX_RESPONSE_HEADER_BYTES = 64 * 1024

#: The largest manifest, runtime config or dotenv file wasikv reads.
MAX_CONFIG_FILE_BYTES = 4 * 1024 * 1024
#: The largest component file wasikv reads (componentize-py's are about 18 MB).
MAX_COMPONENT_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Limits applied to every instance and every guest call (and to host-side buckets).

    Key-value violations are reported as `LimitExceeded`, which guests receive
    as `error::other("... limit ...")`. The instance limits (memory, tables,
    instances) make a growth past them fail the way the guest's own code sees
    an allocation failure (`memory.grow` returns -1: `MemoryError` in Python);
    an instance that needs more than them just to start is refused.
    """

    max_key_bytes: int = 4096
    max_value_bytes: int = 2 * 1024 * 1024
    max_batch_keys: int = 1000
    max_open_buckets: int = 256
    max_open_cas: int = 1024
    list_page_size: int = 1000
    #: The most bytes each linear memory of an instance may grow to.
    max_memory_bytes: int = 256 * 1024 * 1024
    #: The most elements each table of an instance may hold (8 bytes each).
    max_table_elements: int = 1 << 20
    #: Core and component instances, tables and memories one instance may create.
    max_instances: int = 100
    max_tables: int = 100
    max_memories: int = 20
    #: Bytes of stdout, and of stderr, kept from one trigger instance (see `DEFAULT_MAX_OUTPUT_BYTES`).
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES

    def __post_init__(self) -> None:
        for name in (
            "max_key_bytes",
            "max_value_bytes",
            "max_batch_keys",
            "max_open_buckets",
            "max_open_cas",
            "max_table_elements",
            "max_instances",
            "max_tables",
            "max_memories",
            "max_output_bytes",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"limit {name} must be at least 1")
        if self.max_memory_bytes < 1 << 16:
            raise ConfigError("limit max_memory_bytes must be at least 65536 (one wasm page)")
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
        if len(key) * 4 <= self.max_key_bytes:
            return  # no UTF-8 encoding can be too long: skip encoding it
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
