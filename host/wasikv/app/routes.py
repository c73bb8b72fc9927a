"""HTTP routes as Spin writes them, and matching request paths against them.

A route is either exact (`/counter` matches only `/counter`) or a wildcard
whose last segment is `...` (`/api/...` matches `/api` and everything under
`/api/`; `/...` matches every path). When several routes match a path the
most specific one wins: the one with the longest base, an exact route before
a wildcard with the same base.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from ..errors import ConfigError

__all__ = ["Route", "RouteError", "RouteMatch", "Router", "duplicate_route_message", "parse_route"]

_WILDCARD = "..."


class RouteError(ConfigError):
    """A route is malformed, or two routes claim the same paths."""


class _Trigger(Protocol):
    """What `Router` needs of a trigger (`manifest.HttpTrigger` has it)."""

    @property
    def route(self) -> str: ...

    @property
    def component(self) -> str: ...


@dataclass(frozen=True)
class Route:
    """A parsed route: `base` is the exact path, or what a wildcard is under ("" for `/...`)."""

    text: str
    base: str
    wildcard: bool


@dataclass(frozen=True)
class RouteMatch:
    """The route a request path matched.

    `matched_prefix` is the part of the path the route accounts for (the whole
    path for an exact route; the base for a wildcard) and `path_info` the
    rest: route `/api/...` and path `/api/items/3` give `/api` and `/items/3`.
    """

    component: str
    route: str
    matched_prefix: str
    path_info: str


def parse_route(route: str) -> Route:
    """Check a route's syntax; raise `RouteError` saying what is wrong and how to write it."""
    if not route.startswith("/"):
        raise RouteError(f"route {route!r} must start with '/' (for example '/{route.lstrip('/')}')")
    for bad, name in (("?", "a query string"), ("#", "a fragment")):
        if bad in route:
            raise RouteError(f"route {route!r} contains {name}; routes match paths only")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in route):
        raise RouteError(f"route {route!r} contains whitespace or control characters")
    wildcard = route == "/" + _WILDCARD or route.endswith("/" + _WILDCARD)
    base = route[: -len(_WILDCARD) - 1] if wildcard else route
    segments = base.split("/")[1:] if base else []
    for index, segment in enumerate(segments):
        if segment == "":
            if index == len(segments) - 1 and not wildcard:
                continue  # "/" itself, or an exact route with a trailing slash
            raise RouteError(f"route {route!r} has an empty path segment ('//'); remove the extra '/'")
        if _WILDCARD in segment:
            raise RouteError(
                f"route {route!r}: a wildcard can only be the whole last segment, as in '/api/...'"
            )
        if segment in (".", ".."):
            raise RouteError(
                f"route {route!r} has a {segment!r} segment, which request paths never contain; "
                "write the path without it"
            )
        if segment.startswith(":"):
            parent = "/".join(["", *segments[:index]])
            raise RouteError(
                f"route {route!r}: path parameters such as {segment!r} are not supported; "
                f"use a wildcard route ('{parent}/...') and read the path info"
            )
        if segment in ("*", "**"):
            raise RouteError(f"route {route!r}: write a wildcard as a trailing '/...', not {segment!r}")
    return Route(route, base, wildcard)


class Router:
    """Matches request paths to the HTTP triggers of an app, as Spin does.

    Raises `RouteError` for a malformed route or for two routes that claim the
    same paths (the same exact route twice, or the same wildcard twice).
    """

    def __init__(self, triggers: Iterable[_Trigger]) -> None:
        self._exact: dict[str, tuple[str, str]] = {}
        self._wildcards: dict[str, tuple[str, str]] = {}
        for trigger in triggers:
            route = parse_route(trigger.route)
            table = self._wildcards if route.wildcard else self._exact
            earlier = table.get(route.base)
            if earlier is not None:
                raise RouteError(duplicate_route_message(route, earlier[0], trigger.component))
            table[route.base] = (trigger.component, route.text)

    @property
    def routes(self) -> list[str]:
        """Every route, exact ones first."""
        return [route for _, route in (*self._exact.values(), *self._wildcards.values())]

    def match(self, path: str) -> RouteMatch | None:
        """The route that serves `path` (a query string is ignored), or None."""
        path = path.partition("?")[0].partition("#")[0]
        exact = self._exact.get(path)
        if exact is not None:
            return RouteMatch(exact[0], exact[1], path, "")
        candidate = path
        while True:
            hit = self._wildcards.get(candidate)
            if hit is not None:
                return RouteMatch(hit[0], hit[1], candidate, path[len(candidate) :])
            if not candidate:
                return None
            cut = candidate.rfind("/")
            if cut < 0:
                return None
            candidate = candidate[:cut]


def duplicate_route_message(route: Route, first: str, second: str) -> str:
    """What to say when two triggers (of components `first` and `second`) use the same route."""
    kind = "wildcard route" if route.wildcard else "route"
    owners = f"component {first!r}" if first == second else f"components {first!r} and {second!r}"
    return (
        f"{kind} {route.text!r} is used by two triggers ({owners}); "
        "a route can serve one component only: remove one trigger or change its route"
    )
