"""`[[trigger.key-value]]` in the manifest: writes to `store` under `prefix` go to `component`."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._toml import toml_key
from .kind import ListProblem, LoadContext, TriggerFields

# The bounds of `lease_seconds` (`wasikv.triggers.watch.lease` checks the same).
MIN_LEASE = 1.0
MAX_LEASE = 3600.0

__all__ = ["KeyValueTrigger", "check_config", "describe", "duplicates", "parse"]


@dataclass(frozen=True)
class KeyValueTrigger:
    """`[[trigger.key-value]]`: writes to `store` under `prefix` ("" for all keys) go to `component`."""

    store: str
    prefix: str
    component: str
    #: Seconds the trigger's lease lasts (`lease_seconds`; None: `wasikv up --watch-lease`, or 10).
    lease_seconds: float | None = None


def parse(fields: TriggerFields, table: Mapping[str, Any], where: str) -> KeyValueTrigger:
    """One `[[trigger.key-value]]` table as a `KeyValueTrigger`."""
    store = fields.nonempty(table, "store", where, '"default"')
    prefix = fields.string(table, "prefix", where, '"orders:"') or ""
    component = fields.trigger_component(table, where)
    lease = table.get("lease_seconds")
    if lease is not None and (
        type(lease) not in (int, float) or not math.isfinite(lease) or not MIN_LEASE <= lease <= MAX_LEASE
    ):
        raise fields.fail(
            where,
            f"lease_seconds must be a number of seconds from {MIN_LEASE:g} to {MAX_LEASE:g} "
            f"(how long a host may hold the trigger without renewing), not {lease!r}",
        )
    return KeyValueTrigger(
        store=store,
        prefix=prefix,
        component=component,
        lease_seconds=None if lease is None else float(lease),
    )


def duplicates(triggers: Sequence[KeyValueTrigger]) -> ListProblem | None:
    """The first trigger declared a second time (same store, prefix and component), if any."""
    seen: set[tuple[str, str, str]] = set()
    for index, trigger in enumerate(triggers, 1):
        identity = (trigger.store, trigger.prefix, trigger.component)
        if identity in seen:
            return ListProblem(
                f"#{index}",
                f"the same trigger (store {trigger.store!r}, prefix {trigger.prefix!r}, component "
                f"{trigger.component!r}) is declared twice; remove one",
            )
        seen.add(identity)
    return None


def check_config(trigger: KeyValueTrigger, context: LoadContext) -> str | None:
    """What is wrong with watching the trigger's store: undefined, or not granted to its component."""
    if trigger.store not in context.stores:
        return (
            f"store {trigger.store!r} is not defined; define it in {context.config_name} as "
            f"[key_value_store.{toml_key(trigger.store)}] or watch a defined store "
            f"({', '.join(repr(label) for label in sorted(context.stores))})"
        )
    if trigger.store not in context.grants[trigger.component]:
        return (
            f"component {trigger.component!r} watches store {trigger.store!r} but is not granted it; "
            f"add {trigger.store!r} to key_value_stores in [component.{toml_key(trigger.component)}]"
        )
    return None


def describe(trigger: KeyValueTrigger) -> str:
    """The trigger's start-up line: the keys it watches and the component it calls."""
    return f"key-value {trigger.store}:{trigger.prefix}*  ->  {trigger.component}"
