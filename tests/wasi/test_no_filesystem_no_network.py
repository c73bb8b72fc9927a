"""wasi:filesystem and wasi:sockets: nothing to reach, answered as wasmtime answers without them; every
function of every Python WASI interface has a body."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from wasikv.interfaces.wasi import cli, clocks, filesystem, io, sockets
from wasikv.interfaces.wasi.state import Unavailable, WasiInstance
from wasikv.runtime.codec import Err

from ..support import ROOT
from .conftest import BODIES, call

WIT = ROOT / "wit" / "deps"
# The interfaces the Python WASI layer defines (the rest stay wasmtime's).
PYTHON_INTERFACES = {
    "io/error.wit": ["error"],
    "io/poll.wit": ["poll"],
    "io/streams.wit": ["streams"],
    "clocks/monotonic-clock.wit": ["monotonic-clock"],
    "cli/stdio.wit": ["stdin", "stdout", "stderr"],
    "filesystem/types.wit": ["types"],
    "filesystem/preopens.wit": ["preopens"],
    "sockets/tcp.wit": ["tcp"],
    "sockets/tcp-create-socket.wit": ["tcp-create-socket"],
    "sockets/udp.wit": ["udp"],
    "sockets/udp-create-socket.wit": ["udp-create-socket"],
    "sockets/ip-name-lookup.wit": ["ip-name-lookup"],
}
RESOURCES = {**io.RESOURCES, **clocks.RESOURCES, **cli.RESOURCES, **filesystem.RESOURCES, **sockets.RESOURCES}


def _declared(path: Path) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """The functions (component-model names) and resources each interface of a WIT file declares."""
    # The package is declared in one file of the folder.
    packages = (re.search(r"package (\w+:[\w-]+)@", wit.read_text()) for wit in path.parent.glob("*.wit"))
    package = next(found for found in packages if found)
    functions: set[tuple[str, str]] = set()
    resources: set[tuple[str, str]] = set()
    interface = ""
    resource: str | None = None
    depth = resource_depth = 0
    for line in re.sub(r"//.*", "", path.read_text()).splitlines():
        text = line.strip()
        if match := re.match(r"interface ([\w-]+)", text):
            interface = f"{package.group(1)}/{match.group(1)}"
        if match := re.match(r"resource ([\w-]+)", text):
            assert interface
            resources.add((interface, match.group(1)))
            if "{" in text:
                resource, resource_depth = match.group(1), depth
        if text.startswith("constructor("):
            functions.add((interface, f"[constructor]{resource}"))
        elif match := re.match(r"([\w-]+):\s*(static\s+)?func", text):
            kind = "static" if match.group(2) else "method"
            name = f"[{kind}]{resource}.{match.group(1)}" if resource else match.group(1)
            functions.add((interface, name))
        depth += text.count("{") - text.count("}")
        if resource and depth <= resource_depth:
            resource = None
    return functions, resources


@pytest.mark.parametrize("wit", sorted(PYTHON_INTERFACES))
def test_every_function_and_resource_has_a_body_and_a_class(wit: str) -> None:
    functions, resources = _declared(WIT / wit)
    assert {f.rsplit("/", 1)[1] for f, _ in functions} == set(PYTHON_INTERFACES[wit])  # all read
    assert functions - BODIES.keys() == set()
    assert resources - RESOURCES.keys() == set()


def test_no_preopened_directory_and_no_filesystem_errors(instance: WasiInstance) -> None:
    assert call(instance, "wasi:filesystem/preopens", "get-directories") == []
    assert call(instance, "wasi:filesystem/types", "filesystem-error-code", io.IoError("x")) is None
    unreachable = BODIES["wasi:filesystem/types", "[method]descriptor.open-at"]
    assert isinstance(unreachable, Unavailable) and "no filesystem" in unreachable.message


def test_sockets_are_denied_as_wasmtime_denies_them(instance: WasiInstance) -> None:
    denied = Err("access-denied")
    assert call(instance, "wasi:sockets/tcp-create-socket", "create-tcp-socket", "ipv4") == denied
    assert call(instance, "wasi:sockets/udp-create-socket", "create-udp-socket", "ipv6") == denied
    assert call(instance, "wasi:sockets/ip-name-lookup", "resolve-addresses", object(), "example.com") == Err(
        "permanent-resolver-failure"
    )
    unreachable = BODIES["wasi:sockets/tcp", "[method]tcp-socket.start-connect"]
    assert isinstance(unreachable, Unavailable) and "no network" in unreachable.message
