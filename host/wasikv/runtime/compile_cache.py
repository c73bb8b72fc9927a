"""An on-disk cache of compiled components, authenticated and bounded.

Compiling a componentize-py component takes seconds; deserializing the
compiled artifact takes milliseconds. But an artifact is native code that
wasmtime runs unchecked, so an entry is only used when its HMAC verifies with
a secret key kept outside the cache directory: being able to write the cache
directory is not enough to get code run.

An entry is `<sha256(settings + component)>.cwasm`:

    MAGIC (8) | MAC (32) | SHA-256 of the component (32) | settings length (2, big-endian)
    | settings (UTF-8) | artifact

with MAC = HMAC-SHA256(key, every other byte of the file). The settings are
the wasmtime version and the engine configuration. Covering the component's
hash and the settings binds an artifact to what it was compiled from: a
genuine entry copied under another component's name, or made for another
engine configuration (say, without deadline checks), does not verify either.

The cache is bounded: loading an entry marks it used (its mtime), and storing
one prunes the least recently used entries beyond `max_bytes`.

In memory, a `CompileCache` also keeps the last `RECENT_COMPONENTS`
components it handed out: running one again (`Host.run("app.wasm")` in a
loop, say) then costs one hash of its bytes, not a read, authentication and
deserialization of its ~40 MB artifact (about 190 ms per run, measured).
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import hmac
import logging
import os
import secrets
import stat
import struct
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from wasmtime import Engine, WasmtimeError
from wasmtime.component import Component

from ..errors import ComponentError, ConfigError, WasikvError
from ..safe_files import file_kind

log = logging.getLogger("wasikv")

#: Identifies an entry and its format version.
MAGIC = b"wasikv\x00\x01"
#: The file name suffix of entries.
SUFFIX = ".cwasm"
#: Called with a component's origin around each real compile (a cache miss);
#: compiling happens inside the context it returns. For progress displays.
CompileHook = Callable[[str], AbstractContextManager[object]]
#: Size of the secret keys wasikv creates; shorter key files are refused.
KEY_SIZE = 32
DEFAULT_MAX_BYTES = 4 << 30
#: How many compiled components a cache keeps in memory (each is about as
#: big as its artifact: 40 MB for a componentize-py component).
RECENT_COMPONENTS = 4

# magic, MAC, SHA-256 of the component, length of the settings string.
_FIXED = struct.Struct(">8s32s32sH")
_MAC_START, _MAC_END = len(MAGIC), len(MAGIC) + 32


class CacheRefused(WasikvError):
    """The cache directory, a cache file or the key file is not safe to use."""


def default_cache_dir() -> Path:
    """`$WASIKV_CACHE_DIR`, else `$XDG_CACHE_HOME/wasikv`, else `~/.cache/wasikv`."""
    explicit = os.environ.get("WASIKV_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "wasikv"


def default_key_file() -> Path:
    """`$WASIKV_CACHE_KEY`, else `$XDG_CONFIG_HOME/wasikv/cache.key`, else `~/.config/wasikv/cache.key`."""
    explicit = os.environ.get("WASIKV_CACHE_KEY")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "wasikv" / "cache.key"


def default_max_bytes() -> int:
    """`$WASIKV_CACHE_MAX_BYTES`, else 4 GiB; raises `ConfigError` if it is not a byte count."""
    raw = os.environ.get("WASIKV_CACHE_MAX_BYTES")
    if not raw:
        return DEFAULT_MAX_BYTES
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise ConfigError(f"WASIKV_CACHE_MAX_BYTES: expected a number of bytes, got {raw!r}")
    return value


# ------------------------------------------------------------ safety checks


def _read_all(fd: int, size: int) -> bytearray:
    """Up to `size` bytes of `fd` in one buffer (fewer if the file is shorter)."""
    data = bytearray(size)
    done = 0
    with memoryview(data) as view:
        while done < size:
            count = os.readv(fd, [view[done:]])
            if count == 0:
                break
            done += count
    del data[done:]
    return data


def _check_owned(status: os.stat_result, what: str) -> None:
    if status.st_uid != os.geteuid():
        raise CacheRefused(f"{what} is owned by another user (uid {status.st_uid})")


def check_directory(directory: Path, *, create: bool = True) -> None:
    """Raise `CacheRefused` unless only this user can write `directory`.

    With `create`, a missing directory is created with mode 0700 first.
    """
    try:
        if create:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        status = os.stat(directory)
    except OSError as exc:
        raise CacheRefused(f"cache directory {directory}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(status.st_mode):
        raise CacheRefused(f"cache directory {directory} is not a directory")
    _check_owned(status, f"cache directory {directory}")
    if status.st_mode & 0o022:
        mode = stat.S_IMODE(status.st_mode)
        raise CacheRefused(f"cache directory {directory} is group- or world-writable (mode {mode:04o})")


def _inside(path: Path, directory: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(directory))


def read_key(path: Path, cache_dir: Path | None = None, *, create: bool = False) -> bytes | None:
    """The secret key in `path`, or None if there is none (with `create`: a new one).

    Raises `CacheRefused` if the key file is inside `cache_dir`, is not a
    regular file, is owned by another user, or is accessible to anyone else.
    """
    if cache_dir is not None and _inside(path, cache_dir):
        raise CacheRefused(f"key file {path} is inside the cache directory {cache_dir}")
    try:
        # O_NONBLOCK: opening a FIFO planted there must not hang the host.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        if not create:
            return None
        _create_key(path)
        key = read_key(path, cache_dir)
        if key is None:
            raise CacheRefused(f"key file {path} disappeared as it was created") from None
        return key
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise CacheRefused(f"key file {path} is a symbolic link, not a regular file") from None
        raise CacheRefused(f"key file {path}: {exc.strerror or exc}") from None
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise CacheRefused(f"key file {path} is not a regular file")
        _check_owned(status, f"key file {path}")
        if status.st_mode & 0o077:
            mode = stat.S_IMODE(status.st_mode)
            raise CacheRefused(f"key file {path} is accessible to other users (mode {mode:04o}, want 0600)")
        key = bytes(_read_all(fd, min(status.st_size, 4096)))
    finally:
        os.close(fd)
    if len(key) < KEY_SIZE:
        raise CacheRefused(f"key file {path} holds fewer than {KEY_SIZE} bytes")
    return key


def _create_key(path: Path) -> None:
    # Written under a temporary name (O_EXCL, 0600) and published with
    # link(2), which fails if the key exists: processes starting at once
    # agree on one key, and none reads a half-written one.
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(partial, flags, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(secrets.token_bytes(KEY_SIZE))
                out.flush()
                os.fsync(out.fileno())
            try:
                os.link(partial, path)
            except FileExistsError:
                pass  # another process created it first; use theirs
        finally:
            os.unlink(partial)
    except OSError as exc:
        raise CacheRefused(f"cannot create key file {path}: {exc.strerror or exc}") from None


# ------------------------------------------------------------ entry format


class _Rejected(Exception):
    """An entry does not verify; the message says why."""


@dataclass(frozen=True)
class _Header:
    source: bytes
    settings: bytes
    size: int


def _seal(key: bytes, source: bytes, settings: bytes, artifact: bytes | bytearray) -> bytes:
    """The header that goes in front of `artifact` in its entry."""
    tail = source + struct.pack(">H", len(settings)) + settings
    mac = hmac.new(key, MAGIC + tail, hashlib.sha256)
    mac.update(artifact)
    return MAGIC + mac.digest() + tail


def _authenticate(data: bytearray, key: bytes) -> _Header:
    """The header of the entry `data`; raises `_Rejected` unless its MAC verifies with `key`."""
    if not data.startswith(MAGIC):
        raise _Rejected("it has no wasikv header (written by an older wasikv?)")
    if len(data) < _FIXED.size:
        raise _Rejected("it is truncated")
    _, stored, source, length = _FIXED.unpack_from(data)
    size = _FIXED.size + length
    with memoryview(data) as view:
        mac = hmac.new(key, view[:_MAC_START], hashlib.sha256)
        mac.update(view[_MAC_END:])
        digest = mac.digest()
    if len(data) < size or not hmac.compare_digest(digest, stored):
        raise _Rejected("its MAC does not verify (tampered with, truncated, or written with another key)")
    return _Header(source, bytes(data[_FIXED.size : size]), size)


def _open_entry(path: Path) -> tuple[int, os.stat_result]:
    """An fd and status of the regular file `path`, not following a symlink; raises `_Rejected`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _Rejected("it is a symbolic link, not a regular file") from None
        raise
    status = os.fstat(fd)
    if not stat.S_ISREG(status.st_mode):
        os.close(fd)
        raise _Rejected("it is not a regular file")
    return fd, status


def entry_verifies(path: Path, key: bytes | None) -> bool:
    """Whether the entry at `path` is intact and was written with `key` (None: no key, never)."""
    if key is None:
        return False
    try:
        fd, status = _open_entry(path)
    except (OSError, _Rejected):
        return False
    try:
        _authenticate(_read_all(fd, status.st_size), key)
    except _Rejected:
        return False
    finally:
        os.close(fd)
    return True


# ------------------------------------------------------------ entries on disk


@dataclass(frozen=True)
class Entry:
    """A compiled component in the cache directory."""

    path: Path
    size: int
    last_used: float


def list_entries(directory: Path) -> list[Entry]:
    """The entries in `directory` (none if it is missing), least recently used first.

    Only regular files are entries: anything else with an entry's name
    (a directory, a symbolic link...) is never used, pruned or removed;
    `strays` lists those.
    """
    found = []
    for path, status in _named_entries(directory):
        if stat.S_ISREG(status.st_mode):
            found.append(Entry(path, status.st_size, status.st_mtime))
    return sorted(found, key=lambda entry: (entry.last_used, entry.path.name))


def strays(directory: Path) -> list[tuple[Path, str]]:
    """What in `directory` has an entry's name but is not a regular file, with what it is ("a directory")."""
    return sorted(
        (path, file_kind(status.st_mode))
        for path, status in _named_entries(directory)
        if not stat.S_ISREG(status.st_mode)
    )


def _named_entries(directory: Path) -> list[tuple[Path, os.stat_result]]:
    found = []
    try:
        scan = os.scandir(directory)
    except FileNotFoundError:
        return []
    with scan:
        for item in scan:
            if not item.name.endswith(SUFFIX):
                continue
            try:
                found.append((Path(item.path), item.stat(follow_symlinks=False)))
            except FileNotFoundError:
                continue
    return found


def _remove(entry: Entry) -> bool:
    try:
        os.unlink(entry.path)
    except FileNotFoundError:
        return False  # another process removed it
    except IsADirectoryError:
        return False  # replaced by a directory since it was listed: a stray now
    return True


def prune_unverifiable(directory: Path, key: bytes | None) -> list[Entry]:
    """Remove the entries of `directory` that do not verify with `key`; return them."""
    return [e for e in list_entries(directory) if not entry_verifies(e.path, key) and _remove(e)]


def prune_lru(directory: Path, max_bytes: int) -> list[Entry]:
    """Remove least recently used entries until those of `directory` total at most `max_bytes`."""
    entries = list_entries(directory)
    total = sum(entry.size for entry in entries)
    removed = []
    for entry in entries:
        if total <= max_bytes:
            break
        total -= entry.size
        if _remove(entry):
            removed.append(entry)
    return removed


def clear(directory: Path) -> list[Entry]:
    """Remove every entry of `directory` (and partial writes left behind); return the entries."""
    try:
        for partial in directory.glob("*.tmp"):
            if stat.S_ISREG(partial.lstat().st_mode):
                partial.unlink(missing_ok=True)
    except FileNotFoundError:
        pass
    return [entry for entry in list_entries(directory) if _remove(entry)]


# ------------------------------------------------------------ the cache


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
    """Loads components, compiling each distinct one only once per machine.

    `directory` None compiles every component in memory. `key_file`
    defaults to `default_key_file()` and `max_bytes` to `default_max_bytes()`.
    """

    def __init__(
        self,
        engine: Engine,
        directory: Path | None,
        engine_settings: str,
        *,
        key_file: str | Path | None = None,
        max_bytes: int | None = None,
    ) -> None:
        self.engine = engine
        self.directory = directory
        self.settings = f"wasmtime={version('wasmtime')};{engine_settings}"
        self.key_file = Path(key_file) if key_file is not None else default_key_file()
        if max_bytes is None:
            max_bytes = default_max_bytes() if directory is not None else DEFAULT_MAX_BYTES
        if max_bytes < 0:
            raise ConfigError(f"compile cache bound must be at least 0 bytes, got {max_bytes}")
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._checked = False
        self._key: bytes | None = None
        self._recent: OrderedDict[str, Component] = OrderedDict()
        self._recent_lock = threading.Lock()

    def key(self, wasm: bytes) -> str:
        """The cache key (entry name) of a component's bytes under this engine."""
        digest = hashlib.sha256(self.settings.encode())
        digest.update(wasm)
        return digest.hexdigest()

    def load(self, wasm: bytes, origin: str, on_compile: CompileHook | None = None) -> Component:
        """The compiled component for `wasm`, from the cache when an entry verifies.

        When it has to be compiled, that happens inside `on_compile(origin)`.
        One of the last `RECENT_COMPONENTS` loaded is returned as it is.
        """
        if not wasm.startswith(b"\0asm"):
            raise ComponentError(f"{origin}: not a WebAssembly binary")
        if wasm[4:8] != b"\x0d\x00\x01\x00":
            raise ComponentError(f"{origin}: a core WebAssembly module, not a component")
        name = self.key(wasm)
        with self._recent_lock:
            component = self._recent.get(name)
            if component is not None:
                self._recent.move_to_end(name)
                return component
        component = self._load(wasm, name, origin, on_compile)
        with self._recent_lock:
            self._recent[name] = component
            while len(self._recent) > RECENT_COMPONENTS:
                self._recent.popitem(last=False)
        return component

    def _load(self, wasm: bytes, name: str, origin: str, on_compile: CompileHook | None) -> Component:
        key = self._usable_key()
        if key is None or self.directory is None:
            component = self._compile(wasm, origin, on_compile)
        else:
            path = self.directory / f"{name}{SUFFIX}"
            source = hashlib.sha256(wasm).digest()
            cached, writable = self._read(path, key, source)
            if cached is not None:
                return cached
            component = self._compile(wasm, origin, on_compile)
            if writable:
                self._store(path, component, key, source)
        _release_freed_memory()
        return component

    def _compile(self, wasm: bytes, origin: str, on_compile: CompileHook | None) -> Component:
        try:
            with on_compile(origin) if on_compile is not None else nullcontext():
                return Component(self.engine, wasm)
        except WasmtimeError as exc:
            raise ComponentError(f"{origin}: invalid component: {exc}") from None

    def _usable_key(self) -> bytes | None:
        """The key, once the directory and key file were found safe (checked once); else None."""
        if self.directory is None:
            return None
        with self._lock:
            if not self._checked:
                self._checked = True
                try:
                    check_directory(self.directory)
                    self._key = read_key(self.key_file, self.directory, create=True)
                except CacheRefused as refused:
                    log.warning("compile cache not used, compiling in memory: %s", refused)
            return self._key

    def _read(self, path: Path, key: bytes, source: bytes) -> tuple[Component | None, bool]:
        """The verified component cached at `path`, and whether `path` may be (re)written."""
        try:
            fd, status = _open_entry(path)
        except FileNotFoundError:
            return None, True
        except (OSError, _Rejected) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            log.warning("not using compiled component %s: %s", path, reason)
            return None, False
        try:
            _check_owned(status, "it")
            # Verified and deserialized from the same bytes in memory: the
            # file can change under us without the change being run.
            data = _read_all(fd, status.st_size)
            header = _authenticate(data, key)
            if header.source != source:
                raise _Rejected("it was compiled from another component")
            if header.settings != self.settings.encode():
                raise _Rejected("it was compiled for other engine settings")
            os.utime(fd)  # marks it used, for pruning
        except CacheRefused as refused:
            log.warning("not using compiled component %s: %s", path, refused)
            return None, False
        except _Rejected as rejected:
            log.warning("discarding compiled component %s: %s; recompiling", path, rejected)
            return None, True
        except OSError as exc:
            log.warning("not using compiled component %s: %s", path, exc.strerror or exc)
            return None, True
        finally:
            os.close(fd)
        del data[: header.size]
        try:
            return Component.deserialize(self.engine, data), True
        except WasmtimeError as exc:
            log.warning("discarding unusable compiled component %s: %s; recompiling", path, exc)
            return None, True

    def _store(self, path: Path, component: Component, key: bytes, source: bytes) -> None:
        # Written to a temporary file and renamed, so concurrent hosts never
        # read a partly written entry.
        tmp = None
        try:
            artifact = component.serialize()
            header = _seal(key, source, self.settings.encode(), artifact)
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as out:
                out.write(header)
                out.write(artifact)
            os.replace(tmp, path)
            tmp = None
            for entry in prune_lru(path.parent, self.max_bytes):
                log.info("pruned least recently used compiled component %s", entry.path)
        except OSError as exc:
            log.warning("cannot cache compiled component in %s: %s", path.parent, exc)
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
