"""The capability seam: what one instance is given, and the host capabilities that serve it.

A `Capability` is one thing the host lends guests (key-value stores,
variables, outbound HTTP, ...). It owns, in one place:

- the host interfaces it implements (`interfaces`, declared `HostInterface`s
  that typed linking offers to components);
- its linking (`link`): defining those interfaces, or anything else, on a
  component linker, and which settings of an instance need a linker of
  their own (`link_key`);
- the per-instance state its host functions read (`open` when an instance
  is made, `close` when it goes), found by the instance's store context.

What an instance is given travels as one `InstanceSpec`, from the manifest
through every trigger to `Host.instantiate`: a new per-component setting is
one field there and one capability reading it, not a keyword argument
threaded through each trigger.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from wasmtime import Engine, Store
from wasmtime.component import Component, Linker

from .allowed_hosts import AllowedHosts
from .errors import ConfigError
from .runtime.host_functions import HostInterface

if TYPE_CHECKING:
    from .runtime.linking import LinkPlan


class OutputStream(Protocol):
    """Where a guest's stdout or stderr goes: a binary file, a `BytesIO`, a `CapturedOutput`."""

    def write(self, data: bytes, /) -> object:
        """Take one chunk the guest wrote."""


@dataclass(frozen=True)
class InstanceSpec:
    """Everything one instance of a component is given.

    `argv` and `env` are its WASI arguments and environment (nothing else of
    the host's); `variables` what it reads through `wasi:config` (resolved
    values; they may be secrets and are never printed); `grants` the store
    labels it may open (None: all); `stdout`/`stderr` where its output goes
    (None: this process's); `timeout` its deadline in seconds (None: none);
    `allowed_outbound_hosts` the schemes, hosts and ports its outbound HTTP
    requests may reach (Spin's `allowed_outbound_hosts`; empty: none).
    """

    argv: Sequence[str] = ("app.wasm",)
    env: Mapping[str, str] = field(default_factory=dict)
    variables: Mapping[str, str] = field(default_factory=dict, repr=False)
    grants: frozenset[str] | None = None
    stdout: OutputStream | None = None
    stderr: OutputStream | None = None
    timeout: float | None = None
    allowed_outbound_hosts: AllowedHosts = field(default_factory=AllowedHosts)

    def __post_init__(self) -> None:
        object.__setattr__(self, "argv", tuple(self.argv))
        object.__setattr__(self, "env", dict(self.env))
        object.__setattr__(self, "variables", _checked_variables(self.variables))
        if self.grants is not None and not isinstance(self.grants, frozenset):
            object.__setattr__(self, "grants", frozenset(self.grants))
        if not isinstance(self.allowed_outbound_hosts, AllowedHosts):
            raise ConfigError(
                "allowed_outbound_hosts must be an AllowedHosts "
                f"(AllowedHosts.parse([...])), not {type(self.allowed_outbound_hosts).__name__}"
            )

    def with_output(self, stdout: OutputStream | None, stderr: OutputStream | None) -> InstanceSpec:
        """This spec with its output sent to `stdout` and `stderr`."""
        return replace(self, stdout=stdout, stderr=stderr)


class Capability:
    """One host capability: its interfaces, its linking and each instance's state.

    Subclasses set `interfaces` and override `make_state`/`release` (per
    instance state), `link`/`link_key` (linking beyond defining their
    interfaces) or `open` (anything done to a new wasmtime store).
    """

    #: A short name, for messages.
    name: str = "capability"
    #: The host interfaces it implements, offered to typed linking.
    interfaces: tuple[HostInterface, ...] = ()

    def __init__(self) -> None:
        #: Each live instance's state, by its store context address (what its host functions read).
        self.states: dict[int, Any] = {}

    def prepare(self, engine: Engine, component: Component, origin: str) -> Hashable | None:
        """Work out, once per component, what linking it needs (kept in `LinkPlan.extra(name)`).

        Raises `ComponentError` for a component this capability cannot serve.
        """
        return None

    def link_key(self, plan: LinkPlan, spec: InstanceSpec) -> Hashable:
        """What about `spec` makes a component's linker differ (linkers are cached by it); None: nothing."""
        return None

    def link(self, linker: Linker, plan: LinkPlan, spec: InstanceSpec) -> None:
        """Define on `linker` this capability's interfaces among those typed linking chose (`plan`)."""
        for interface in plan.interfaces:
            if interface in self.interfaces:
                interface.define(linker, self.states)

    def open(self, store: Store, ctx: int, plan: LinkPlan, spec: InstanceSpec) -> None:
        """Give a new instance (in `store`, context `ctx`) its state; may raise `ConfigError`."""
        state = self.make_state(spec)
        if state is not None:
            self.states[ctx] = state

    def make_state(self, spec: InstanceSpec) -> Any:
        """The state of a new instance given `spec` (None: none)."""
        return None

    def close(self, ctx: int) -> None:
        """Release the state of an instance that is gone."""
        state = self.states.pop(ctx, None)
        if state is not None:
            self.release(state)

    def release(self, state: Any) -> None:
        """Free one instance's state (nothing by default)."""

    def state(self, ctx: int) -> Any:
        """The state of the live instance at `ctx` (`KeyError` if none)."""
        return self.states[ctx]


def _checked_variables(variables: Mapping[str, str] | None) -> Mapping[str, str]:
    """A copy of `variables`, or `ConfigError` naming a key whose key or value is not a string."""
    checked: dict[str, str] = {}
    for key, value in (variables or {}).items():
        # Never the value itself in the message: it may be a secret.
        if not isinstance(key, str):
            raise ConfigError(f"variable names must be strings, not {type(key).__name__}")
        if not isinstance(value, str):
            raise ConfigError(f"variable {key!r} must be a string, not {type(value).__name__}")
        checked[key] = value
    return checked


__all__ = ["Capability", "InstanceSpec", "OutputStream"]
