"""The table of trigger kinds: one entry per `[[trigger.NAME]]` wasikv understands.

The manifest parser, the loader and `wasikv up`'s start-up lines loop over
`TRIGGER_KINDS`; kinds are read, checked and printed in its order. This is
the manifest side only: `wasikv.triggers.registry.TRIGGERS` pairs each kind
with its runtime, in the same order, for the ASGI app and `wasikv inspect`.

Adding a trigger is one entry here, with a module beside this one for its
manifest side (the trigger class, parser, checks, start-up line); its
runtime under `wasikv.triggers` (the component class, what the app starts,
and its `TriggerRuntime`); and one entry in `wasikv.triggers.registry`
pairing the two.
"""

from __future__ import annotations

from typing import Any

from . import http_trigger, key_value
from .kind import TriggerKind

__all__ = ["HTTP", "KEY_VALUE", "TRIGGER_KINDS"]

HTTP = TriggerKind(
    name="http",
    keys=("route", "component"),
    example='route = "/..." and component = "..."',
    parse=http_trigger.parse,
    check_list=http_trigger.duplicate_routes,
    describe=http_trigger.describe,
)

KEY_VALUE = TriggerKind(
    name="key-value",
    keys=("store", "prefix", "component", "lease_seconds"),
    example='store = "default" and component = "..."',
    parse=key_value.parse,
    check_list=key_value.duplicates,
    check_config=key_value.check_config,
    describe=key_value.describe,
    singleton=True,
)

TRIGGER_KINDS: tuple[TriggerKind[Any], ...] = (HTTP, KEY_VALUE)
