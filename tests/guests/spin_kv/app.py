"""Spin's key-value and variables as a Spin app calls them, built against Spin's own WIT.

No wasikv_sdk: the bindings (`wit_world`) come from world.wit, which imports
`fermyon:spin/key-value@2.0.0` and `fermyon:spin/variables@2.0.0`. Each
argument is one step, run in order on one instance; it prints one JSON
list, a result per step: `{"ok": value}` or `{"error": case, "message": payload}`.

- `open:LABEL`: open a store, which the later steps use (the one before is dropped);
- `get:KEY`, `set:KEY=VALUE`, `delete:KEY`, `exists:KEY`, `keys`: on that store;
- `fill:LABEL:N`: open N more stores of LABEL and keep them (ok: N), or the
  error the first one that fails gets (with `opened`: how many did not);
- `release`: drop every store `fill` kept;
- `var:NAME`: the variable NAME;
- `sqlite:NAME`: open the Spin SQLite database NAME (only in the
  `spin-platform` build, whose `fermyon:spin/sqlite@2.0.0` wasikv does not serve).

Values are bytes shown as latin-1 text.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import key_value, variables

current: key_value.Store | None = None
kept: list[key_value.Store] = []


def failure(exc: Err[Any]) -> dict[str, Any]:
    value = exc.value
    name = type(value).__name__.removeprefix("Error_")
    case = "".join("-" + c.lower() if c.isupper() else c for c in name).lstrip("-")
    return {"error": case, "message": getattr(value, "value", None)}


def store() -> key_value.Store:
    assert current is not None, "open a store first"
    return current


def step(command: str) -> Any:
    global current
    verb, _, rest = command.partition(":")
    if verb == "open":
        if current is not None:
            current.__exit__(None, None, None)
            current = None
        current = key_value.Store.open(rest)
        return rest
    if verb == "get":
        value = store().get(rest)
        return None if value is None else value.decode("latin-1")
    if verb == "set":
        key, _, value = rest.partition("=")
        store().set(key, value.encode())
        return None
    if verb == "delete":
        store().delete(rest)
        return None
    if verb == "exists":
        return store().exists(rest)
    if verb == "keys":
        return store().get_keys()
    if verb == "fill":
        label, _, count = rest.rpartition(":")
        for opened in range(int(count)):
            try:
                kept.append(key_value.Store.open(label))
            except Err as exc:
                return {**failure(exc), "opened": opened}
        return int(count)
    if verb == "release":
        for handle in kept:
            handle.__exit__(None, None, None)
        released = len(kept)
        kept.clear()
        return released
    if verb == "var":
        return variables.get(rest)
    if verb == "sqlite":
        # Only the spin-platform world has these bindings.
        from wit_world.imports import sqlite

        sqlite.Connection.open(rest)
        return rest
    raise ValueError(f"unknown step {command!r}")


def run_step(command: str) -> dict[str, Any]:
    try:
        value = step(command)
    except Err as exc:
        return failure(exc)
    if isinstance(value, dict) and "error" in value:
        return value
    return {"ok": value}


class Run(exports.Run):
    def run(self) -> None:
        print(json.dumps([run_step(command) for command in sys.argv[1:]]))
