"""`[[trigger.key-value]]` in the manifest: writes to `store` under `prefix` go to `component`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._toml import toml_key
from .kind import ListProblem, LoadContext, TriggerFields

__all__ = ["KeyValueTrigger", "check_config", "describe", "duplicates", "parse"]


@dataclass(frozen=True)
class KeyValueTrigger:
    """`[[trigger.key-value]]`: writes to `store` under `prefix` ("" for all keys) go to `component`."""

    store: str
    prefix: str
    component: str


def parse(fields: TriggerFields, table: Mapping[str, Any], where: str) -> KeyValueTrigger:
    """One `[[trigger.key-value]]` table as a `KeyValueTrigger`."""
    store = fields.nonempty(table, "store", where, '"default"')
    prefix = fields.string(table, "prefix", where, '"orders:"') or ""
    component = fields.trigger_component(table, where)
    return KeyValueTrigger(store=store, prefix=prefix, component=component)


def duplicates(triggers: Sequence[KeyValueTrigger]) -> ListProblem | None:
    """The first trigger declared a second time (same store, prefix and component), if any."""
    seen: set[KeyValueTrigger] = set()
    for index, trigger in enumerate(triggers, 1):
        if trigger in seen:
            return ListProblem(
                f"#{index}",
                f"the same trigger (store {trigger.store!r}, prefix {trigger.prefix!r}, component "
                f"{trigger.component!r}) is declared twice; remove one",
            )
        seen.add(trigger)
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
