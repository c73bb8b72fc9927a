"""Spin's routing rules: exact routes, trailing `/...` wildcards, the most specific wins."""

from __future__ import annotations

import pytest

from wasikv.app.manifest import HttpTrigger
from wasikv.app.routes import RouteError, RouteMatch, Router, parse_route

ROUTES = {
    "/": "root",
    "/counter": "counter",
    "/api/...": "api",
    "/api/items": "items-exact",
    "/api/items/...": "items",
    "/static/css/...": "css",
    "/foo": "foo-exact",
    "/foo/...": "foo-wild",
    "/trailing/": "trailing",
}

# path → (component, route, matched_prefix, path_info), or None for no match
CASES: list[tuple[str, tuple[str, str, str, str] | None]] = [
    ("/", ("root", "/", "/", "")),
    ("/counter", ("counter", "/counter", "/counter", "")),
    ("/counter?x=1&y=2", ("counter", "/counter", "/counter", "")),
    ("/counter/", None),
    ("/counter/1", None),
    ("/counterx", None),
    ("/api", ("api", "/api/...", "/api", "")),
    ("/api?q=1", ("api", "/api/...", "/api", "")),
    ("/api/", ("api", "/api/...", "/api", "/")),
    ("/api/other/3", ("api", "/api/...", "/api", "/other/3")),
    ("/api/other/3?q=/api/items", ("api", "/api/...", "/api", "/other/3")),
    ("/apix", None),
    ("/api/items", ("items-exact", "/api/items", "/api/items", "")),
    ("/api/items/", ("items", "/api/items/...", "/api/items", "/")),
    ("/api/items/3", ("items", "/api/items/...", "/api/items", "/3")),
    ("/api/items/3/tags", ("items", "/api/items/...", "/api/items", "/3/tags")),
    ("/api/itemsx", ("api", "/api/...", "/api", "/itemsx")),
    ("/static/css/site.css", ("css", "/static/css/...", "/static/css", "/site.css")),
    ("/static/js/site.js", None),
    ("/static/css", ("css", "/static/css/...", "/static/css", "")),
    # exact beats wildcard at the same length
    ("/foo", ("foo-exact", "/foo", "/foo", "")),
    ("/foo/", ("foo-wild", "/foo/...", "/foo", "/")),
    ("/foo/bar", ("foo-wild", "/foo/...", "/foo", "/bar")),
    ("/trailing/", ("trailing", "/trailing/", "/trailing/", "")),
    ("/trailing", None),
    ("/nothing", None),
    ("", None),
]


def router(routes: dict[str, str]) -> Router:
    return Router(HttpTrigger(route, component) for route, component in routes.items())


@pytest.mark.parametrize(("path", "expected"), CASES)
def test_match(path: str, expected: tuple[str, str, str, str] | None) -> None:
    found = router(ROUTES).match(path)
    assert found == (RouteMatch(*expected) if expected else None)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/", ("all", "/...", "", "/")),
        ("", ("all", "/...", "", "")),
        ("/nothing", ("all", "/...", "", "/nothing")),
        ("/counter/", ("all", "/...", "", "/counter/")),
        ("/a/b?c", ("all", "/...", "", "/a/b")),
        ("/counter", ("counter", "/counter", "/counter", "")),
        ("/api/x", ("api", "/api/...", "/api", "/x")),
    ],
)
def test_catch_all_loses_to_anything_more_specific(path: str, expected: tuple[str, str, str, str]) -> None:
    found = router({"/...": "all", "/counter": "counter", "/api/...": "api"}).match(path)
    assert found == RouteMatch(*expected)


def test_order_of_declaration_does_not_matter() -> None:
    forward = router(ROUTES)
    backward = router(dict(reversed(list(ROUTES.items()))))
    for path, _ in CASES:
        assert forward.match(path) == backward.match(path)


def test_routes_listed() -> None:
    assert sorted(router(ROUTES).routes) == sorted(ROUTES)


@pytest.mark.parametrize(
    ("route", "base", "wildcard"),
    [
        ("/", "/", False),
        ("/...", "", True),
        ("/a", "/a", False),
        ("/a/", "/a/", False),
        ("/a/b/...", "/a/b", True),
        ("/a.b/c-d_e~f%20", "/a.b/c-d_e~f%20", False),
    ],
)
def test_parse_valid_routes(route: str, base: str, wildcard: bool) -> None:
    parsed = parse_route(route)
    assert (parsed.text, parsed.base, parsed.wildcard) == (route, base, wildcard)


@pytest.mark.parametrize(
    ("route", "problem"),
    [
        ("", "must start with '/'"),
        ("api/...", "must start with '/' (for example '/api/...')"),
        ("...", "must start with '/'"),
        ("/a/.../b", "only be the whole last segment"),
        ("/a...", "only be the whole last segment"),
        ("/.../...", "only be the whole last segment"),
        ("/a/....", "only be the whole last segment"),
        ("//", "empty path segment"),
        ("//...", "empty path segment"),
        ("/a//...", "empty path segment"),
        ("/a//b", "empty path segment"),
        (
            "/users/:id",
            "path parameters such as ':id' are not supported; use a wildcard route ('/users/...')",
        ),
        ("/*", "trailing '/...'"),
        ("/a/**", "trailing '/...'"),
        ("/a?b", "query string"),
        ("/a#b", "fragment"),
        ("/a/../b", "'..' segment"),
        ("/./...", "'.' segment"),
        ("/a b", "whitespace"),
        ("/a\tb", "whitespace"),
    ],
)
def test_parse_invalid_routes(route: str, problem: str) -> None:
    with pytest.raises(RouteError) as caught:
        parse_route(route)
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    ("routes", "problem"),
    [
        (["/x", "/x"], "route '/x' is used by two triggers"),
        (["/x/...", "/y", "/x/..."], "wildcard route '/x/...' is used by two triggers"),
        (["/...", "/..."], "wildcard route '/...' is used by two triggers"),
    ],
)
def test_router_rejects_duplicates(routes: list[str], problem: str) -> None:
    with pytest.raises(RouteError, match=problem.replace(".", r"\.")):
        Router(HttpTrigger(route, f"c{index}") for index, route in enumerate(routes))


def test_router_accepts_exact_and_wildcard_with_the_same_base() -> None:
    found = Router([HttpTrigger("/x/...", "wild"), HttpTrigger("/x", "exact")]).match("/x")
    assert found is not None and found.component == "exact"
