"""An on-disk cache of compiled components.

Compiling a componentize-py component takes seconds; deserializing the
compiled artifact takes milliseconds. Entries are keyed by the component's
bytes, the wasmtime version and the engine settings, so a changed component
or an upgraded wasmtime never loads a stale artifact.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import tempfile
from importlib.metadata import version
from pathlib import Path

from wasmtime import Engine, WasmtimeError
from wasmtime.component import Component

from .errors import ComponentError

log = logging.getLogger("wasikv")


def default_cache_dir() -> Path:
    """`$WASIKV_CACHE_DIR`, else `$XDG_CACHE_HOME/wasikv`, else `~/.cache/wasikv`."""
    explicit = os.environ.get("WASIKV_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "wasikv"


def _release_freed_memory() -> None:
    # Compiling a componentize-py component allocates ~300 MB that glibc
    # keeps after it is freed; a server that compiled once would carry it for
    # its whole life. malloc_trim hands it back (about 340 -> 90 MB here).
    if _libc is not None:
        _libc.malloc_trim(0)


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):  # not glibc
        return None
    return libc


_libc = _glibc()


class CompileCache:
    """Loads components, compiling each distinct one only once per machine."""

    def __init__(self, engine: Engine, directory: Path | None, engine_settings: str) -> None:
        self.engine = engine
        self.directory = directory
        self._salt = f"wasmtime={version('wasmtime')};{engine_settings}".encode()

    def key(self, wasm: bytes) -> str:
        """The cache key of a component's bytes under this engine."""
        digest = hashlib.sha256(self._salt)
        digest.update(wasm)
        return digest.hexdigest()

    def load(self, wasm: bytes, origin: str) -> Component:
        """The compiled component for `wasm`, from the cache when possible."""
        if not wasm.startswith(b"\0asm"):
            raise ComponentError(f"{origin}: not a WebAssembly binary")
        if wasm[4:8] != b"\x0d\x00\x01\x00":
            raise ComponentError(f"{origin}: a core WebAssembly module, not a component")
        path = None if self.directory is None else self.directory / f"{self.key(wasm)}.cwasm"
        if path is not None and path.exists():
            try:
                return Component.deserialize_file(self.engine, str(path))
            except WasmtimeError as exc:
                log.warning("discarding unusable compiled component %s: %s", path, exc)
        try:
            component = Component(self.engine, wasm)
        except WasmtimeError as exc:
            raise ComponentError(f"{origin}: invalid component: {exc}") from None
        if path is not None:
            self._store(path, component)
        _release_freed_memory()
        return component

    def _store(self, path: Path, component: Component) -> None:
        # Written to a temporary file and renamed, so concurrent hosts never
        # read a partly written artifact.
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as out:
                out.write(component.serialize())
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("cannot cache compiled component in %s: %s", path.parent, exc)
