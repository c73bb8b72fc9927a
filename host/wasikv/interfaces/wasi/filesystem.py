"""`wasi:filesystem` types and preopens 0.2: wasikv gives guests no filesystem.

`get-directories` gives no preopened directory, so a guest can never hold
a `descriptor` or a `directory-entry-stream`: their methods are linked as
traps (`Unavailable`). `filesystem-error-code` answers `none` for every
error (none of wasikv's streams reads a file).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .io import HostResource, IoError
from .state import Unavailable, WasiInstance

__all__ = ["BODIES", "NO_FILESYSTEM", "RESOURCES", "Descriptor", "DirectoryEntryStream"]

#: Why a filesystem function cannot be called.
NO_FILESYSTEM = Unavailable("wasikv gives guests no filesystem")

_TYPES = "wasi:filesystem/types"

_DESCRIPTOR_METHODS = (
    "read-via-stream",
    "write-via-stream",
    "append-via-stream",
    "advise",
    "sync-data",
    "get-flags",
    "get-type",
    "set-size",
    "set-times",
    "read",
    "write",
    "read-directory",
    "sync",
    "create-directory-at",
    "stat",
    "stat-at",
    "set-times-at",
    "link-at",
    "open-at",
    "readlink-at",
    "remove-directory-at",
    "rename-at",
    "symlink-at",
    "unlink-file-at",
    "is-same-object",
    "metadata-hash",
    "metadata-hash-at",
)


class Descriptor(HostResource):
    """`descriptor`: never made (no directory is preopened)."""

    resource_name = "descriptor"


class DirectoryEntryStream(HostResource):
    """`directory-entry-stream`: never made (it needs a descriptor)."""

    resource_name = "directory-entry-stream"


def get_directories(_instance: WasiInstance) -> list[tuple[Descriptor, str]]:
    """`get-directories`: no preopened directory."""
    return []


def filesystem_error_code(_instance: WasiInstance, _error: IoError) -> None:
    """`filesystem-error-code`: `none`, no error of wasikv's comes from a file."""
    return None


#: The body of every function of `wasi:filesystem` types and preopens.
BODIES: dict[tuple[str, str], Callable[..., Any] | Unavailable] = {
    ("wasi:filesystem/preopens", "get-directories"): get_directories,
    (_TYPES, "filesystem-error-code"): filesystem_error_code,
    (_TYPES, "[method]directory-entry-stream.read-directory-entry"): NO_FILESYSTEM,
    **{(_TYPES, f"[method]descriptor.{name}"): NO_FILESYSTEM for name in _DESCRIPTOR_METHODS},
}

#: The class of each `wasi:filesystem` resource.
RESOURCES: dict[tuple[str, str], type] = {
    (_TYPES, "descriptor"): Descriptor,
    (_TYPES, "directory-entry-stream"): DirectoryEntryStream,
}
