"""The table of trigger kinds: one entry per `[[trigger.NAME]]` wasikv understands.

Adding a trigger is one entry here, a module beside this one for its
manifest side (the trigger class, parser, checks, start-up line) and its
runtime under `wasikv.triggers`. The manifest parser, the loader, `wasikv up`
and `wasikv inspect` read this table; they know no kind by name. Kinds are
read, checked, printed and started in the table's order.
"""

from __future__ import annotations

from typing import Any

from . import http, key_value
from .kind import TriggerKind

__all__ = ["HTTP", "KEY_VALUE", "TRIGGER_KINDS"]

HTTP = TriggerKind(
    name="http",
    keys=("route", "component"),
    example='route = "/..." and component = "..."',
    parse=http.parse,
    check_list=http.duplicate_routes,
    describe=http.describe,
)

KEY_VALUE = TriggerKind(
    name="key-value",
    keys=("store", "prefix", "component"),
    example='store = "default" and component = "..."',
    parse=key_value.parse,
    check_list=key_value.duplicates,
    check_config=key_value.check_config,
    describe=key_value.describe,
)

TRIGGER_KINDS: tuple[TriggerKind[Any], ...] = (HTTP, KEY_VALUE)
