"""The table of trigger kinds: one entry per `[[trigger.NAME]]` wasikv understands.

The manifest parser, the loader, `wasikv up`, `wasikv inspect` and the ASGI
app loop over `TRIGGER_KINDS`; kinds are read, checked, printed, prepared
and started in its order. Adding a trigger is one entry here, a module
beside this one for its manifest side (the trigger class, parser, checks,
start-up line, and a function importing its runtime) and its runtime under
`wasikv.triggers` (the component class, what the app starts, and its
`TriggerRuntime`).
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
    runtime=http.runtime,
)

KEY_VALUE = TriggerKind(
    name="key-value",
    keys=("store", "prefix", "component"),
    example='store = "default" and component = "..."',
    parse=key_value.parse,
    check_list=key_value.duplicates,
    check_config=key_value.check_config,
    describe=key_value.describe,
    runtime=key_value.runtime,
    singleton=True,
)

TRIGGER_KINDS: tuple[TriggerKind[Any], ...] = (HTTP, KEY_VALUE)
