"""`wasikv cache`: inspect, prune and clear the compiled-component cache."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from ..errors import WasikvError
from ..runtime.compile_cache import (
    CacheRefused,
    Entry,
    check_directory,
    clear,
    default_cache_dir,
    default_key_file,
    default_max_bytes,
    entry_verifies,
    list_entries,
    prune_lru,
    prune_unverifiable,
    read_key,
    strays,
)


@contextmanager
def _reported() -> Iterator[None]:
    """Turn wasikv's and the file system's errors into a one-line message and exit status 1."""
    try:
        yield
    except WasikvError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        raise click.ClickException(f"{where}{exc.strerror or exc}") from None


def _size(count: int) -> str:
    value = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            break
        value /= 1024
    return f"{count} bytes" if unit == "bytes" else f"{value:.1f} {unit}"


def _exact(count: int) -> str:
    return f"{_size(count)} ({count} bytes)" if count >= 1024 else _size(count)


def _skipped(directory: Path) -> None:
    """Note on stderr what has an entry's name but is not one (a directory, a link), and stays."""
    for path, kind in strays(directory):
        click.echo(f"skipped {path}: {kind}, not a cache entry; remove it yourself", err=True)


def _entries(entries: list[Entry]) -> str:
    """`N entries (SIZE)`."""
    noun = "entry" if len(entries) == 1 else "entries"
    return f"{len(entries)} {noun} ({_size(sum(entry.size for entry in entries))})"


@click.group("cache")
def cache() -> None:
    """Inspect, prune and clear the compiled-component cache.

    The cache is $WASIKV_CACHE_DIR (default: $XDG_CACHE_HOME/wasikv, else
    ~/.cache/wasikv). Entries are used only if their MAC verifies with the
    key in $WASIKV_CACHE_KEY (default: $XDG_CONFIG_HOME/wasikv/cache.key,
    else ~/.config/wasikv/cache.key). Hosts keep it under
    $WASIKV_CACHE_MAX_BYTES (default 4 GiB) by dropping the least recently
    used entries.
    """


@cache.command("info")
def info_cmd() -> None:
    """Show the directory, key file, entries, total size and bound, and how many entries do not verify."""
    with _reported():
        directory, key_file, bound = default_cache_dir(), default_key_file(), default_max_bytes()
        entries = list_entries(directory)
        if directory.exists():
            try:
                check_directory(directory, create=False)
                directory_state = ""
            except CacheRefused as refused:
                directory_state = f" (not used: {refused})"
        else:
            directory_state = " (missing)"
        key: bytes | None = None
        try:
            key = read_key(key_file, directory)
            key_state = "" if key is not None else " (missing: created on first use)"
            unverified = str(sum(not entry_verifies(entry.path, key) for entry in entries))
        except CacheRefused as refused:
            key_state = f" (refused: {refused})"
            unverified = "unknown (no usable key)"
    click.echo(f"directory:      {directory}{directory_state}")
    click.echo(f"key file:       {key_file}{key_state}")
    click.echo(f"entries:        {len(entries)}")
    click.echo(f"total size:     {_exact(sum(entry.size for entry in entries))}")
    click.echo(f"bound:          {_exact(bound)}")
    click.echo(f"do not verify:  {unverified}")


@cache.command("prune")
@click.option(
    "--max-bytes",
    type=click.IntRange(min=0),
    metavar="N",
    help="Prune down to N bytes (default: $WASIKV_CACHE_MAX_BYTES, else 4 GiB).",
)
def prune_cmd(max_bytes: int | None) -> None:
    """Remove the entries that do not verify, then the least recently used ones beyond the bound.

    Without a key file no entry verifies, so every entry is removed. A key
    file that is refused (unsafe) is an error: nothing is removed.
    """
    with _reported():
        directory, key_file = default_cache_dir(), default_key_file()
        bound = max_bytes if max_bytes is not None else default_max_bytes()
        key = read_key(key_file, directory)
        removed = [(entry, "does not verify") for entry in prune_unverifiable(directory, key)]
        removed += [(entry, "least recently used") for entry in prune_lru(directory, bound)]
        left = list_entries(directory)
    _skipped(directory)
    for entry, why in removed:
        click.echo(f"removed {entry.path} ({_size(entry.size)}): {why}")
    gone = [entry for entry, _ in removed]
    click.echo(f"removed {_entries(gone)}; {_entries(left)} left, bound {_size(bound)}")


@cache.command("clear")
def clear_cmd() -> None:
    """Remove every entry (the key file stays)."""
    with _reported():
        directory = default_cache_dir()
        removed = clear(directory)
    _skipped(directory)
    click.echo(f"removed {_entries(removed)}")
