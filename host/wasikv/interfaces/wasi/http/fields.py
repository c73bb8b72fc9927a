"""`wasi:http/types.fields`: headers and trailers, with wasmtime's rules.

Names are RFC 9110 tokens, stored and returned lower-case, so lookups are
case-insensitive; values are bytes without control characters (tab and
obs-text allowed), and a `content-length` value must be digits (kept in its
canonical form, "007" -> "7"). Entries come back grouped by name, names in
the order first set, as the `http` crate's `HeaderMap` keeps them (deleting
a name moves the last name into its place, as `HeaderMap` does, so the
order a guest sees is the order `wasmtime serve` would send).

A fields made by the guest (constructor, `from-list`, `clone`) is mutable
and bounded: more than `MAX_FIELDS` values or `MAX_FIELD_BYTES` bytes trap
the guest, as wasmtime's size limit does. Every other one (a message's
`headers()`, trailers received, a fields handed to a message) is immutable:
`set`, `append` and `delete` return `immutable`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ....limits import MAX_RESPONSE_HEADER_BYTES, MAX_RESPONSE_HEADERS
from ....runtime._capi import GuestFault
from ....runtime.codec import Err, Ok
from ..io import HostResource
from ..state import WasiInstance
from .errors import FORBIDDEN, IMMUTABLE, INVALID_SYNTAX, is_token

__all__ = ["BODIES", "FORBIDDEN_HEADERS", "MAX_FIELDS", "MAX_FIELD_BYTES", "Fields"]

#: The header names a guest may neither set nor receive: wasmtime's
#: `DEFAULT_FORBIDDEN_HEADERS` (hop-by-hop and connection-level ones).
FORBIDDEN_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
        "host",
        "http2-settings",
    }
)

#: The most values, and bytes (names and values, plus 4 per value for ": " and
#: CRLF), a guest's fields may hold: what wasikv accepts in a response's headers.
MAX_FIELDS = MAX_RESPONSE_HEADERS
MAX_FIELD_BYTES = MAX_RESPONSE_HEADER_BYTES

# The bytes a field value may not hold: controls but tab, and DEL.
_BAD_VALUE_BYTES = bytes(b for b in range(256) if (b < 32 and b != 9) or b == 127)
_MAX_U64 = (1 << 64) - 1
_CONTENT_LENGTH = "content-length"


def _name(name: str) -> str | None:
    """The canonical (lower-case) form of a field name, None when it is no token."""
    return name.lower() if is_token(name) else None


def _value(name: str, value: bytes) -> bytes | None:
    """The value as stored, None when it is not a valid value of `name`."""
    if len(value.translate(None, _BAD_VALUE_BYTES)) != len(value):
        return None
    if name == _CONTENT_LENGTH:
        # Digits only (RFC 9110's 1*DIGIT: no sign, no spaces), kept canonical.
        if not value.isdigit() or int(value) > _MAX_U64:
            return None
        return str(int(value)).encode("ascii")
    return value


def _cost(name: str, value: bytes) -> int:
    return len(name) + len(value) + 4


class Fields(HostResource):
    """A `fields` resource: ordered names, each with its values.

    `Fields()` is an empty mutable one; `Fields.received(pairs)` the
    immutable headers or trailers of a message that arrived (forbidden
    names dropped, as wasmtime drops them).
    """

    resource_name = "fields"

    def __init__(self) -> None:
        super().__init__()
        self._names: list[str] = []
        self._values: dict[str, list[bytes]] = {}
        self._mutable = True
        self._count = 0
        self._size = 0

    @classmethod
    def received(cls, pairs: Iterable[tuple[str | bytes, bytes]]) -> Fields:
        """The immutable fields of a message received from the network.

        Names may be str or bytes, in any case. Forbidden names are dropped
        (a guest never sees `host`, `connection`...), and so are pairs that
        are not valid fields, which a conforming HTTP parser never passes on.
        """
        fields = cls()
        for raw_name, raw_value in pairs:
            text = raw_name.decode("latin-1") if isinstance(raw_name, bytes) else raw_name
            name = _name(text)
            if name is None or name in FORBIDDEN_HEADERS:
                continue
            value = _value(name, bytes(raw_value))
            if value is not None:
                fields._add(name, value)
        fields._mutable = False
        return fields

    @property
    def mutable(self) -> bool:
        """Whether `set`, `append` and `delete` may change it."""
        return self._mutable

    def freeze(self) -> None:
        """Make it immutable for good (it was handed to a message)."""
        self._mutable = False

    def view(self) -> Fields:
        """An immutable fields with the same entries (what a message's `headers()` returns).

        It shares this one's storage, so this one must itself be immutable.
        """
        assert not self._mutable, "a view of mutable fields would change under the guest"
        view = Fields()
        view._names, view._values = self._names, self._values
        view._mutable, view._count, view._size = False, self._count, self._size
        return view

    def copy(self) -> Fields:
        """A mutable deep copy (`clone`)."""
        copy = Fields()
        copy._names = list(self._names)
        copy._values = {name: list(values) for name, values in self._values.items()}
        copy._count, copy._size = self._count, self._size
        return copy

    def pairs(self) -> list[tuple[str, bytes]]:
        """Every (name, value), values grouped by name (`entries`)."""
        values = self._values
        return [(name, value) for name in self._names for value in values[name]]

    def get(self, name: str) -> list[bytes]:
        """The values of `name` (any case); empty when it has none or is no valid name."""
        key = _name(name)
        return list(self._values.get(key, ())) if key is not None else []

    def has(self, name: str) -> bool:
        """Whether `name` (any case) has values; False when it is no valid name."""
        key = _name(name)
        return key is not None and key in self._values

    def __len__(self) -> int:
        return self._count

    def set(self, name: str, values: list[bytes]) -> Ok | Err:
        """Replace the values of `name` (its place kept); no values removes it."""
        key = _name(name)
        if key is None:
            return Err(INVALID_SYNTAX)
        if key in FORBIDDEN_HEADERS:
            return Err(FORBIDDEN)
        if not self._mutable:
            return Err(IMMUTABLE)
        checked = [_value(key, value) for value in values]
        if None in checked:
            return Err(INVALID_SYNTAX)
        new = [value for value in checked if value is not None]
        old = self._values.get(key, [])
        count = len(new) - len(old)
        size = sum(_cost(key, v) for v in new) - sum(_cost(key, v) for v in old)
        self._check_room(count, size)
        self._count += count
        self._size += size
        if not new:
            if old:
                self._remove(key)
        elif old:
            self._values[key] = new
        else:
            self._names.append(key)
            self._values[key] = new
        return Ok()

    def delete(self, name: str) -> Ok | Err:
        """Remove every value of `name`; nothing to remove is no error."""
        key = _name(name)
        if key is None:
            return Err(INVALID_SYNTAX)
        if key in FORBIDDEN_HEADERS:
            return Err(FORBIDDEN)
        if not self._mutable:
            return Err(IMMUTABLE)
        old = self._values.get(key)
        if old:
            self._count -= len(old)
            self._size -= sum(_cost(key, v) for v in old)
            self._remove(key)
        return Ok()

    def append(self, name: str, value: bytes) -> Ok | Err:
        """Add one value to `name`, after its others."""
        key = _name(name)
        if key is None:
            return Err(INVALID_SYNTAX)
        if key in FORBIDDEN_HEADERS:
            return Err(FORBIDDEN)
        checked = _value(key, value)
        if checked is None:
            return Err(INVALID_SYNTAX)
        if not self._mutable:
            return Err(IMMUTABLE)
        self._check_room(1, _cost(key, checked))
        self._add(key, checked)
        return Ok()

    def _add(self, key: str, value: bytes) -> None:
        values = self._values.get(key)
        if values is None:
            self._names.append(key)
            self._values[key] = [value]
        else:
            values.append(value)
        self._count += 1
        self._size += _cost(key, value)

    def _check_room(self, count: int, size: int) -> None:
        """Trap the guest when a change by `count` values and `size` bytes would pass the limits."""
        if count > 0 and self._count + count > MAX_FIELDS:
            raise GuestFault(f"wasi:http fields: more than {MAX_FIELDS} values")
        if size > 0 and self._size + size > MAX_FIELD_BYTES:
            raise GuestFault(f"wasi:http fields: more than {MAX_FIELD_BYTES} bytes")

    def _remove(self, key: str) -> None:
        del self._values[key]
        names = self._names
        index = names.index(key)
        last = names.pop()
        if index < len(names):
            names[index] = last


def _new(instance: WasiInstance) -> Fields:
    return Fields()


def _from_list(instance: WasiInstance, entries: list[tuple[str, bytes]]) -> Ok | Err:
    fields = Fields()
    for name, value in entries:
        added = fields.append(name, value)
        if isinstance(added, Err):
            return added
    return Ok(fields)


def _get(instance: WasiInstance, fields: Fields, name: str) -> list[bytes]:
    return fields.get(name)


def _has(instance: WasiInstance, fields: Fields, name: str) -> bool:
    return fields.has(name)


def _set(instance: WasiInstance, fields: Fields, name: str, values: list[bytes]) -> Ok | Err:
    return fields.set(name, values)


def _delete(instance: WasiInstance, fields: Fields, name: str) -> Ok | Err:
    return fields.delete(name)


def _append(instance: WasiInstance, fields: Fields, name: str, value: bytes) -> Ok | Err:
    return fields.append(name, value)


def _entries(instance: WasiInstance, fields: Fields) -> list[tuple[str, bytes]]:
    return fields.pairs()


def _clone(instance: WasiInstance, fields: Fields) -> Fields:
    return fields.copy()


_TYPES = "wasi:http/types"
BODIES: dict[tuple[str, str], Callable[..., Any]] = {
    (_TYPES, "[constructor]fields"): _new,
    (_TYPES, "[static]fields.from-list"): _from_list,
    (_TYPES, "[method]fields.get"): _get,
    (_TYPES, "[method]fields.has"): _has,
    (_TYPES, "[method]fields.set"): _set,
    (_TYPES, "[method]fields.delete"): _delete,
    (_TYPES, "[method]fields.append"): _append,
    (_TYPES, "[method]fields.entries"): _entries,
    (_TYPES, "[method]fields.clone"): _clone,
}
