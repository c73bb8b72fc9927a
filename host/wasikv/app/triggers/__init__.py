"""Trigger kinds as the manifest sees them: `TRIGGER_KINDS`, one entry per `[[trigger.NAME]]`.

This is the manifest side only (no wasmtime): how each kind is parsed,
checked and described. How it runs lives in `wasikv.triggers`.
"""

from __future__ import annotations

from .http_trigger import HttpTrigger
from .key_value import KeyValueTrigger
from .kind import ListProblem, LoadContext, Trigger, TriggerFields, TriggerKind
from .kinds import HTTP, KEY_VALUE, TRIGGER_KINDS

__all__ = [
    "HTTP",
    "KEY_VALUE",
    "TRIGGER_KINDS",
    "HttpTrigger",
    "KeyValueTrigger",
    "ListProblem",
    "LoadContext",
    "Trigger",
    "TriggerFields",
    "TriggerKind",
]
