"""`[[trigger.http]]` in the manifest: requests whose path matches `route` go to `component`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..routes import RouteError, duplicate_route_message, parse_route
from .kind import ListProblem, TriggerFields

__all__ = ["HttpTrigger", "describe", "duplicate_routes", "parse"]


@dataclass(frozen=True)
class HttpTrigger:
    """`[[trigger.http]]`: requests whose path matches `route` go to `component`."""

    route: str
    component: str


def parse(fields: TriggerFields, table: Mapping[str, Any], where: str) -> HttpTrigger:
    """One `[[trigger.http]]` table as an `HttpTrigger`; the route must be one `Router` accepts."""
    if isinstance(table.get("route"), dict):
        raise fields.fail(where, "'route' must be a path string; private routes are not supported")
    route = fields.string(table, "route", where, '"/hello"', required=True)
    assert route is not None
    try:
        parse_route(route)
    except RouteError as exc:
        raise fields.fail(where, str(exc)) from None
    return HttpTrigger(route=route, component=fields.trigger_component(table, where))


def duplicate_routes(triggers: Sequence[HttpTrigger]) -> ListProblem | None:
    """The first two triggers that claim the same paths (the same exact route or wildcard), if any."""
    owners: dict[tuple[bool, str], tuple[int, str]] = {}
    for index, trigger in enumerate(triggers, 1):
        route = parse_route(trigger.route)
        key = (route.wildcard, route.base)
        earlier = owners.get(key)
        if earlier is not None:
            return ListProblem(
                f"#{earlier[0]} and #{index}", duplicate_route_message(route, earlier[1], trigger.component)
            )
        owners[key] = (index, trigger.component)
    return None


def describe(trigger: HttpTrigger) -> str:
    """The trigger's start-up line: its route and the component it goes to."""
    return f"{trigger.route}  ->  {trigger.component}"
