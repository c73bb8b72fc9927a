"""What a trigger kind declares: the shape every entry of `TRIGGER_KINDS` has."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, Protocol, TypeVar

if TYPE_CHECKING:
    from ..manifest import ManifestError

__all__ = ["ListProblem", "LoadContext", "Trigger", "TriggerFields", "TriggerKind"]


class Trigger(Protocol):
    """What every trigger has: the component it invokes."""

    @property
    def component(self) -> str: ...


_T = TypeVar("_T", bound=Trigger)


class TriggerFields(Protocol):
    """The manifest parser's checked field access, as a trigger kind's parser uses it."""

    def fail(self, where: str, problem: str) -> ManifestError:
        """The error to raise for `problem` at `where` (the message names the file)."""
        ...

    def string(
        self, table: Mapping[str, Any], key: str, where: str, example: str, *, required: bool = False
    ) -> str | None:
        """`table[key]` if it is a string; None if absent (an error if `required`)."""
        ...

    def nonempty(self, table: Mapping[str, Any], key: str, where: str, example: str) -> str:
        """`table[key]`, which must be a string that is not blank."""
        ...

    def trigger_component(self, table: Mapping[str, Any], where: str) -> str:
        """The trigger's `component`, which must name a defined `[component.NAME]`."""
        ...


class ListProblem(NamedTuple):
    """A mistake only the whole list of a kind's triggers shows.

    `entries` names the triggers involved ("#1 and #3"); `problem` says what to fix.
    """

    entries: str
    problem: str


@dataclass(frozen=True)
class LoadContext:
    """What load-time checks see: the runtime config's stores and each component's granted labels.

    `config_name` is the runtime config file as messages name it.
    """

    stores: Mapping[str, str]
    grants: Mapping[str, frozenset[str]]
    config_name: str


def no_list_check(triggers: Sequence[Any]) -> ListProblem | None:
    """For kinds whose triggers cannot conflict with each other."""
    return None


def no_config_check(trigger: Any, context: LoadContext) -> str | None:
    """For kinds that need nothing from the runtime config."""
    return None


@dataclass(frozen=True)
class TriggerKind(Generic[_T]):
    """One kind of trigger: how wasikv reads, checks and describes `[[trigger.NAME]]` tables.

    `parse` turns one table (its keys already checked against `keys`) into a
    trigger, raising `fields.fail(...)` for a mistake; `check_list` finds
    conflicts between all triggers of the kind; `check_config` returns what
    is wrong with one trigger given the runtime config (None if nothing);
    `describe` is its line in `wasikv up`'s start-up output.

    How a kind runs is not here: `wasikv.triggers.registry` pairs each kind
    with its runtime, so that the manifest side never imports the runtime
    side (and reading a manifest loads no wasmtime).
    """

    #: The manifest name: `[[trigger.NAME]]`.
    name: str
    #: The keys a table of this kind may have, in the order messages list them.
    keys: tuple[str, ...]
    #: What a table needs, as messages suggest it: `route = "/..." and component = "..."`.
    example: str
    parse: Callable[[TriggerFields, Mapping[str, Any], str], _T]
    describe: Callable[[_T], str]
    check_list: Callable[[Sequence[_T]], ListProblem | None] = no_list_check
    check_config: Callable[[_T, LoadContext], str | None] = no_config_check
    #: Whether one process at a time runs each trigger, however many run the
    #: app (watchers take turns through leases in the store; two delivering
    #: one trigger at once would deliver every change twice). A process can
    #: also keep them off (`create_app(singletons=False)`).
    singleton: bool = False

    @property
    def section(self) -> str:
        """How the manifest writes one trigger of this kind: `[[trigger.NAME]]`."""
        return f"[[trigger.{self.name}]]"
