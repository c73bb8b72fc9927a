"""What each instance of an app's component is given, from its manifest entry and resolved variables."""

from __future__ import annotations

from ..allowed_hosts import AllowedHosts
from ..app.loader import LoadedApp
from ..capability import InstanceSpec


def instance_spec(loaded: LoadedApp, component: str, timeout: float | None) -> InstanceSpec:
    """The `InstanceSpec` of `component`'s instances: its environment, variables, grants and allowed hosts.

    `timeout` is each call's deadline in seconds (None: none); argv and
    output are the trigger's to set.
    """
    entry = loaded.manifest.components[component]
    return InstanceSpec(
        env=entry.environment,
        variables=loaded.variables.get(component) or {},
        grants=loaded.grants[component],
        timeout=timeout,
        allowed_outbound_hosts=loaded.allowed_outbound_hosts.get(component, AllowedHosts()),
    )


__all__ = ["instance_spec"]
