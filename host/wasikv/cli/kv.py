"""`wasikv kv`: read and edit a store directly, an app's store by label or any store URL."""

from __future__ import annotations

import os
import sys
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import click

from ..app.manifest import MANIFEST_NAME, find_manifest
from ..app.runtime_config import DEFAULT_LABEL, RUNTIME_CONFIG_NAME
from ..errors import ConfigError, KeyValueError, WasikvError
from ..limits import Limits
from ..safe_files import describe_size, read_regular_file, read_stream
from ..stores import open_store
from ..stores._url import without_credentials
from ..stores.base import Store
from ..stores.registry import BACKENDS, DEFAULT_STORE_URL, backend_for_url

__all__ = ["Target", "escape_key", "is_binary", "kv", "resolve_target", "shown_url", "terminal_bytes"]

_F = TypeVar("_F", bound=Callable[..., object])


def shown_url(url: str) -> str:
    """`url` as messages show it: without credentials; a SQLite store as `sqlite:` and its absolute path."""
    try:
        backend = backend_for_url(url)
    except ConfigError:
        return without_credentials(url)
    if backend.name == "sqlite":
        from ..stores.sqlite import path_of_url

        try:
            return f"sqlite:{path_of_url(url)}"
        except ConfigError:
            pass
    return without_credentials(url)


@dataclass(frozen=True)
class Target:
    """The store a kv command works on and how it was chosen, for messages.

    `label` is passed when opening, so backends that keep labels apart
    (Redis and Postgres) use the label's keyspace, as `wasikv up` does.
    `origin` says where the URL came from (`label default of wasikv.toml`).
    """

    url: str
    label: str | None = None
    origin: str | None = None

    def describe(self) -> str:
        """The store's URL without credentials, and where it came from."""
        shown = shown_url(self.url)
        return f"{shown} ({self.origin})" if self.origin else shown

    def scrub(self, message: str) -> str:
        """`message` with the store URL's credentials removed, wherever it quotes the URL."""
        return message.replace(self.url, without_credentials(self.url))


@dataclass
class _Selection:
    """The store options as given to the group and the subcommand (the subcommand's win)."""

    store: str | None = None
    manifest: str | None = None
    label: str | None = None
    runtime_config: str | None = None


def _remember(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None and param.name is not None:
        setattr(ctx.ensure_object(_Selection), param.name, value)


def _store_option(f: _F) -> _F:
    return click.option(
        "--store",
        metavar="URL",
        expose_value=False,
        callback=_remember,
        help=f"The store's URL ({', '.join(s + ':' for b in BACKENDS for s in b.schemes)}; forms in "
        f"`wasikv kv --help`). Default: the `default` store of ./{MANIFEST_NAME} if there is one, "
        f"else {DEFAULT_STORE_URL}.",
    )(f)


def _label_option(f: _F) -> _F:
    return click.option(
        "--label",
        metavar="LABEL",
        expose_value=False,
        callback=_remember,
        help=f"Use the app's store with this label (default: {DEFAULT_LABEL}).",
    )(f)


def resolve_target(
    *,
    store: str | None = None,
    manifest: str | None = None,
    label: str | None = None,
    runtime_config: str | None = None,
    keyspace_label: bool = False,
) -> Target:
    """The store the options name, resolved like `wasikv up` resolves an app's labels.

    `--store` names a store by URL and cannot be combined with the app options
    (unless `keyspace_label`: then `label` picks a per-label keyspace of the
    URL, as `migrate-redis --label` always did). Otherwise the app is the
    manifest `-f` names, or ./wasikv.toml; without any option and without
    ./wasikv.toml, the store is `DEFAULT_STORE_URL`. Raises `click.UsageError`
    for conflicting options and `ConfigError` for a bad app or unknown label.
    """
    if store is not None:
        if manifest is not None or runtime_config is not None or (label is not None and not keyspace_label):
            raise click.UsageError(
                "--store names the store by URL; -f/--file, --label and --runtime-config-file pick "
                "a store of an app instead: give one or the other"
            )
        return Target(store, label=label)
    if manifest is None and label is None and runtime_config is None and not Path(MANIFEST_NAME).is_file():
        return Target(DEFAULT_STORE_URL)
    from ..app.loader import load_app

    path = find_manifest(manifest if manifest is not None else MANIFEST_NAME)
    label = label if label is not None else DEFAULT_LABEL
    loaded = load_app(path, runtime_config_file=runtime_config, require_sources=False, resolve=False)
    if label not in loaded.stores:
        config = loaded.runtime_config_file or path.parent / RUNTIME_CONFIG_NAME
        raise ConfigError(
            f"{path} defines no store label {label!r} (defined: {', '.join(sorted(loaded.stores))}); "
            f"define it in {config} as [key_value_store.{label}]"
        )
    return Target(loaded.stores[label], label=label, origin=f"label {label} of {path}")


def _target(*, keyspace_label: bool = False) -> Target:
    selection = click.get_current_context().find_object(_Selection) or _Selection()
    try:
        return resolve_target(
            store=selection.store,
            manifest=selection.manifest,
            label=selection.label,
            runtime_config=selection.runtime_config,
            keyspace_label=keyspace_label,
        )
    except WasikvError as exc:
        raise click.ClickException(str(exc)) from None


@contextmanager
def _reported(target: Target) -> Iterator[None]:
    """Turn wasikv's errors into a one-line message naming the store, and exit status 1."""
    try:
        yield
    except (WasikvError, KeyValueError) as exc:
        raise click.ClickException(f"{target.describe()}: {target.scrub(str(exc))}") from None


@contextmanager
def _opened(target: Target, *, existing: bool = False) -> Iterator[Store]:
    """The target store, open; with `existing`, a SQLite file that does not exist is an error, not created."""
    with _reported(target):
        if existing and backend_for_url(target.url).name == "sqlite":
            from ..stores.sqlite import path_of_url

            if not os.path.exists(path_of_url(target.url)):
                raise click.ClickException(f"no store at {target.describe()}: the file does not exist")
        store = open_store(target.url, label=target.label)
        try:
            yield store
        finally:
            store.close()


def is_binary(value: bytes) -> bool:
    """Whether a terminal should not show `value`: not UTF-8, or control characters but tab and newline."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return any(unicodedata.category(ch) == "Cc" and ch not in "\t\n" for ch in text)


# Bidirectional-text controls (format characters that reorder what follows).
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_SHORT_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_key(key: str) -> str:
    """`key` as `kv list` prints it: one line, unable to move the cursor or restyle the terminal.

    Backslash, newline, carriage return and tab become two-character escapes;
    other control characters (category Cc), line and paragraph separators,
    lone surrogates and bidirectional-text controls become \\xHH, \\uHHHH or
    \\UHHHHHHHH. Other text, emoji sequences included, is printed as it is.
    """
    if key.isprintable() and "\\" not in key:
        return key  # the common case: nothing to escape
    return "".join(_escape_char(ch) for ch in key)


def _escape_char(ch: str) -> str:
    if ch in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[ch]
    if ch in _BIDI_CONTROLS or unicodedata.category(ch) in ("Cc", "Zl", "Zp", "Cs"):
        code = ord(ch)
        if code < 0x100:
            return f"\\x{code:02x}"
        return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
    return ch


def terminal_bytes(value: bytes, *, tty: bool, raw: bool) -> bytes | None:
    """What `kv get` writes to stdout for `value`; None when it must refuse (binary on a terminal).

    Pipes and `--raw` get the exact bytes. A terminal gets text with a final
    newline (added unless the value ends with one), like redis-cli.
    """
    if raw or not tty:
        return value
    if is_binary(value):
        return None
    return value if value.endswith(b"\n") else value + b"\n"


def _help() -> str:
    forms = "\n\n".join(
        f"{', '.join(scheme + ':' for scheme in backend.schemes)}  {backend.url_forms}"
        for backend in BACKENDS
    )
    return (
        "Read and edit a store directly (no component involved).\n\n"
        f"The store is the one --store URL names; else the store labelled --label (default: "
        f"{DEFAULT_LABEL}) of the app -f/--file names (a {MANIFEST_NAME} or its directory), with its "
        f"{RUNTIME_CONFIG_NAME} (or --runtime-config-file), exactly as `wasikv up` finds it; else, when "
        f"the current directory has a {MANIFEST_NAME}, that app's {DEFAULT_LABEL} store; else "
        f"{DEFAULT_STORE_URL} in the current directory. --store and --label also work after the "
        "subcommand. --store cannot be combined with -f/--file, --label or --runtime-config-file. "
        "Errors name the store (without credentials).\n\n"
        f"Store URLs:\n\n{forms}"
    )


@click.group("kv", help=_help())
@click.option(
    "-f",
    "--file",
    "manifest",
    metavar="PATH",
    expose_value=False,
    callback=_remember,
    help=f"The app manifest, or its directory (default: ./{MANIFEST_NAME} if it exists).",
)
@_label_option
@click.option(
    "--runtime-config-file",
    "runtime_config",
    metavar="PATH",
    expose_value=False,
    callback=_remember,
    help=f"The app's store definitions (default: {RUNTIME_CONFIG_NAME} next to the manifest).",
)
@_store_option
def kv() -> None:
    """Read and edit a store directly."""


@kv.command("get")
@_store_option
@_label_option
@click.option("--raw", is_flag=True, help="Write the value's bytes as they are, even to a terminal.")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="Write the value's exact bytes to this file."
)
@click.argument("key")
def kv_get(raw: bool, output: str | None, key: str) -> None:
    """Print the value of KEY; exit 1 if it does not exist.

    A SQLite store that does not exist is an error, not created. To a
    terminal, a text value is printed with a newline at its end; a binary
    value (not UTF-8, or with control characters other than tab and newline)
    is refused: use --raw or -o FILE. To a pipe or file, and with --raw, the
    exact bytes are written with nothing added (redis-cli adds a newline;
    wasikv does not), so `wasikv kv get K > f` copies the value.
    """
    target = _target()
    with _opened(target, existing=True) as store:
        Limits().check_key(key)
        value = store.get(key)
    if value is None:
        raise click.ClickException(f"key {key!r} does not exist in {target.describe()}")
    if output is not None:
        try:
            with open(output, "wb") as file:
                file.write(value)
        except OSError as exc:
            raise click.ClickException(f"{output}: {exc.strerror or exc}") from None
        return
    shown = terminal_bytes(value, tty=sys.stdout.isatty(), raw=raw)
    if shown is None:
        raise click.ClickException(
            f"the value of {key!r} in {target.describe()} is binary ({len(value)} bytes); "
            "use --raw to write it to the terminal anyway or -o FILE to save it"
        )
    sys.stdout.flush()
    sys.stdout.buffer.write(shown)
    sys.stdout.buffer.flush()


@kv.command("set")
@_store_option
@_label_option
@click.argument("key")
@click.argument("value", required=False)
@click.option(
    "--file",
    "path",
    metavar="PATH",
    help="Read the value from a regular file, or from stdin with '-' (at most max_value_bytes).",
)
def kv_set(key: str, value: str | None, path: str | None) -> None:
    """Set KEY to VALUE (or to the contents of --file).

    --file reads a regular file only (a FIFO or device is refused, never
    waited on: pipe it to --file - instead), and refuses a value larger
    than a store takes (max_value_bytes, 2 MiB) before reading it whole.
    """
    if (value is None) == (path is None):
        raise click.UsageError("give exactly one of VALUE or --file")
    data = value.encode("utf-8") if value is not None else _value_file(path or "-")
    target = _target()
    with _opened(target) as store:
        limits = Limits()
        limits.check_key(key)
        limits.check_value(data)
        store.set(key, data)


def _value_file(path: str) -> bytes:
    """The value `kv set --file PATH` names, at most `max_value_bytes`; one-line errors."""
    limit = Limits().max_value_bytes
    if path != "-":
        return read_regular_file(
            path,
            limit,
            "value file",
            error=click.ClickException,
            missing_hint="name an existing file, or '-' for stdin",
            special_hint="to read a pipe, give --file - and redirect it to stdin",
        )
    data = read_stream(sys.stdin.buffer, limit)
    if data is None:
        raise click.ClickException(
            f"stdin: the value holds more than {describe_size(limit)}, the most a store takes "
            "(max_value_bytes)"
        )
    return data


@kv.command("delete")
@_store_option
@_label_option
@click.argument("keys", nargs=-1, required=True)
def kv_delete(keys: tuple[str, ...]) -> None:
    """Delete KEYS (missing keys are fine)."""
    with _opened(_target()) as store:
        store.delete_many(list(keys))


@kv.command("list")
@_store_option
@_label_option
@click.option("--prefix", default="", help="Only keys starting with this prefix.")
@click.option(
    "-0",
    "--null",
    is_flag=True,
    help="Write each key exactly as it is, followed by a NUL byte instead of a newline (for xargs -0).",
)
def kv_list(prefix: str, null: bool) -> None:
    """Print every key, one per line, in ascending order.

    Keys are printed escaped, so that each takes one line and none can move
    the cursor or recolour the terminal: a backslash is printed as \\\\,
    newline, carriage return and tab as \\n, \\r and \\t, and every other
    control character, line or paragraph separator and bidirectional-text
    control as \\xHH, \\uHHHH or \\UHHHHHHHH (as in a Python string).
    --null writes the keys' exact UTF-8 bytes instead, each ended by a NUL.
    A SQLite store that does not exist is an error, not created.
    """
    from ..bucket import Bucket

    with _opened(_target(), existing=True) as store:
        out = sys.stdout.buffer
        for key in Bucket("cli", store, Limits()).keys(prefix or None):
            if null:
                out.write(key.encode("utf-8") + b"\0")
            else:
                click.echo(escape_key(key))


@kv.command("incr")
@_store_option
@_label_option
@click.argument("key")
@click.argument("delta", type=int, default=1)
def kv_incr(key: str, delta: int) -> None:
    """Atomically add DELTA (default 1) to the counter at KEY; print the result."""
    with _opened(_target()) as store:
        Limits().check_key(key)
        click.echo(store.increment(key, delta))


@kv.command("migrate-redis")
@_store_option
@click.option(
    "--label",
    metavar="LABEL",
    expose_value=False,
    callback=_remember,
    help="The app's store label; with --store, the label whose keyspace (wasikv:LABEL:) to migrate "
    "when the URL has no ?prefix=.",
)
def kv_migrate_redis() -> None:
    """Move a Redis store from the old key layout (P seq, P k:KEY) to the new one (P|seq, P|k:KEY).

    Stop every wasikv process that uses the prefix first: the renames are
    many commands, not one transaction. Stores refuse the prefix until the
    migration has finished; it is safe to run again, and refuses when the
    new layout already holds data beside the old one.
    """
    target = _target(keyspace_label=True)
    if not target.url.lower().startswith(("redis://", "rediss://")):
        raise click.UsageError(f"{target.describe()} is not a redis:// or rediss:// store")
    with _reported(target):
        store = open_store(target.url, label=target.label)
        try:
            from ..stores.redis import RedisStore, migrate_layout  # open_store found redis-py

            assert isinstance(store, RedisStore)
            click.echo(migrate_layout(store).summary())
        finally:
            store.close()
