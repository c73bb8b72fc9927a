"""`wasikv inspect`: what a component imports and exports, and what wasikv makes of it.

The analysis is the one the host and the triggers use before they run a
component (`linking.match_imports`, `linking.check_exports`), reported
instead of raised: for each import, who provides it (wasikv itself, and in
which shape of wasi:keyvalue; wasmtime's WASI 0.2) or why nobody does; the
imports linked as traps (Spin interfaces wasikv does not serve), listed
first; and which of wasikv's worlds the component fits.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ComponentError
from ..host import Host
from ..interfaces.outbound_http import HTTP_INTERFACE
from ..interfaces.unprovided import SPIN_PACKAGES, not_provided
from ..interfaces.wasi.linking import INCOMING_HANDLER, plan_wasi
from ..runtime.linking import check_exports, common_shapes, match_imports, mixed_shapes
from ..runtime.wit_types import FuncSig, ResultOf
from ..triggers.registry import TRIGGERS

#: WASI 0.2 interfaces, which wasmtime's own WASI implementation provides.
_WASI_02 = re.compile(r"^wasi:(cli|clocks|filesystem|io|random|sockets)/[a-z-]+@0\.2\.\d+$")
_HTTP_PROVIDER = "wasikv wasi:http (requests only where allowed_outbound_hosts allows; none by default)"
_PYTHON_WASI = "wasikv (Python wasi:io and wasi:http, for a wasi:http/incoming-handler component)"
_SENDER_WASI = "wasmtime WASI 0.2, or wasikv's Python WASI when allowed_outbound_hosts allows a host"
_RUN = re.compile(r"^wasi:cli/run@0\.2\.\d+$")
_RUN_FUNCTION = FuncSig((), ResultOf(None, None))


@dataclass
class ImportReport:
    """One import: who provides it, or why nobody does."""

    name: str
    #: "wasikv (<shape>)", "wasmtime WASI 0.2", "wasmtime wasi:http (...)", or None when nobody does.
    provider: str | None
    problems: list[str] = field(default_factory=list)
    functions: dict[str, str] = field(default_factory=dict)


@dataclass
class ExportReport:
    """One exported instance and its functions."""

    name: str
    functions: dict[str, str] = field(default_factory=dict)


@dataclass
class WorldReport:
    """Whether the component can serve one of wasikv's worlds, and how it is run."""

    world: str
    runs_with: str
    fits: bool
    problem: str | None = None


@dataclass
class Inspection:
    """Everything `wasikv inspect` reports about one component."""

    component: str
    imports: list[ImportReport]
    exports: list[ExportReport]
    #: The wasi:keyvalue shapes its imports are served in (empty if it imports none).
    keyvalue: list[str]
    worlds: list[WorldReport]
    #: Why wasikv cannot run it at all (an import nobody provides, mixed WITs).
    problems: list[str]
    #: The imports linked as traps (Spin interfaces wasikv does not serve): the
    #: component runs, and a call of one of their functions traps.
    traps: list[str] = field(default_factory=list)

    @property
    def runnable(self) -> bool:
        """Whether every import is provided and the component fits at least one world."""
        return not self.problems and any(w.fits for w in self.worlds)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of the report."""
        return {**asdict(self), "runnable": self.runnable}

    def render(self) -> str:
        """The report as text for a terminal."""
        lines = [self.component]
        lines.append(f"  wasi:keyvalue: {', '.join(self.keyvalue) or 'not imported'}")
        lines += [f"  imports {name}: not provided by wasikv; calls trap" for name in self.traps]
        for world in self.worlds:
            mark = "yes" if world.fits else f"no: {world.problem}"
            lines.append(f"  {world.world} ({world.runs_with}): {mark}")
        for problem in self.problems:
            lines.append(f"  cannot run: {problem}")
        lines.append("imports")
        width = max((len(i.name) for i in self.imports), default=0)
        for item in self.imports:
            lines.append(f"  {item.name:<{width}}  {item.provider or 'NOT PROVIDED'}")
            lines += [f"      {problem}" for problem in item.problems]
            lines += [f"      {name}: {text}" for name, text in item.functions.items()]
        lines.append("exports")
        for export in self.exports:
            lines.append(f"  {export.name}")
            lines += [f"      {name}: {text}" for name, text in export.functions.items()]
        return "\n".join(lines)


def inspect_component(host: Host, path: str | Path) -> Inspection:
    """Analyse the component at `path` with `host`'s implementations; never refuses it."""
    component = host.load(path, check=False)
    imports = host.imports(component)
    exports = host.exports(component)
    found = match_imports(imports, host.provided)
    shapes = common_shapes([m for m in found if m.matches])
    problems: list[str] = []
    traps: list[str] = []
    try:
        wasi = plan_wasi(host.engine, component, str(path))
    except ComponentError as exc:
        wasi = None
        # A component that only sends requests runs, as long as it may reach no host.
        sender = not any(INCOMING_HANDLER.match(name) for name in exports)
        suffix = " (so it may be allowed no outbound host)" if sender else ""
        problems += [line.removeprefix(f"{path}: ") + suffix for line in str(exc).splitlines()]
    handler = wasi is not None and wasi.handler is not None
    reports = []
    for match in found:
        report = ImportReport(match.name, None, list(match.problems))
        if wasi is not None and match.name in wasi.python:
            report.provider = (
                _PYTHON_WASI
                if handler
                else _HTTP_PROVIDER
                if HTTP_INTERFACE.match(match.name)
                else _SENDER_WASI
            )
        elif (handler and wasi is not None and match.name in wasi.stubbed) or (
            SPIN_PACKAGES.match(match.name) and not match.ours
        ):
            report.provider = None
            report.problems.append(not_provided(match.name) + "; its calls trap")
            report.functions = _signatures(match.functions)
            traps.append(match.name)
        elif match.matches:
            owned = sorted(set().union(*(c.shapes for c in match.matches)) & (shapes or set()))
            report.provider = f"wasikv ({' or '.join(owned)})" if owned else "wasikv"
            report.functions = _signatures(match.functions)
        elif match.ours:
            report.functions = _signatures(match.functions)
            problems += [f"{match.name} {problem}" for problem in match.problems]
        elif _WASI_02.match(match.name):
            report.provider = "wasmtime WASI 0.2"
        elif HTTP_INTERFACE.match(match.name):
            report.provider = _HTTP_PROVIDER
        else:
            reason = "neither wasikv nor wasmtime's WASI 0.2 implements it"
            report.problems.append(reason)
            problems.append(f"{match.name}: {reason}")
        reports.append(report)
    if shapes is None:
        problems.append(mixed_shapes([m for m in found if m.matches]))
    keyvalue = sorted(shapes) if shapes else []
    return Inspection(
        component=str(path),
        imports=reports,
        exports=[ExportReport(name, _signatures(functions)) for name, functions in exports.items()],
        keyvalue=keyvalue,
        worlds=_worlds(exports, str(path)),
        problems=problems,
        traps=traps,
    )


def _signatures(functions: Mapping[str, FuncSig]) -> dict[str, str]:
    return {name: signature.render(short=True) for name, signature in functions.items()}


def _worlds(exports: Mapping[str, Mapping[str, FuncSig]], origin: str) -> list[WorldReport]:
    run = next((name for name in exports if _RUN.match(name)), "wasi:cli/run@0.2.0")
    checks: list[tuple[str, str, str, Mapping[str, FuncSig]]] = [
        ("wasikv:app/command", "wasikv run", run, {"run": _RUN_FUNCTION}),
    ]
    for entry in TRIGGERS:
        for export in entry.runtime.exports:
            interface = next((name for name in export.interfaces if name in exports), export.interfaces[0])
            checks.append((export.world, entry.kind.section, interface, export.functions))
    reports = []
    for world, runs_with, interface, functions in checks:
        try:
            check_exports(exports, interface, functions, origin, world)
        except ComponentError as exc:
            problem = "; ".join(line.removeprefix(f"{origin}: ") for line in str(exc).splitlines())
            reports.append(WorldReport(world, runs_with, False, problem))
        else:
            reports.append(WorldReport(world, runs_with, True))
    return reports


__all__ = ["ExportReport", "ImportReport", "Inspection", "WorldReport", "inspect_component"]
