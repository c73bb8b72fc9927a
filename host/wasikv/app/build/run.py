"""`wasikv build`: run each component's build command, skipping the ones whose inputs did not change.

A component's inputs are the files its `watch` globs match (relative to the
build's workdir) and the command itself. Hidden directories, `__pycache__`,
`node_modules` and virtualenvs are never searched, and no component's source
is an input of any build. After a successful build the inputs' hash is kept
in `.wasikv/build-state.json` next to the manifest; the next build skips the
component while the hash is the same and its source file exists. A build
that fails or is interrupted forgets the component's hash, so it runs again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import TracebackType
from typing import Literal

from rich.console import Console, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from ..errors import WasikvError
from ._toml import toml_key
from .manifest import AppManifest, BuildSpec, ComponentSpec, ManifestError

__all__ = [
    "STATE_FILE",
    "BuildFailed",
    "BuildResult",
    "build_app",
    "build_env",
    "input_digest",
    "watched_files",
]

#: The build state's file name, in `.wasikv/` next to the manifest.
STATE_FILE = "build-state.json"
_STATE_VERSION = 1
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class BuildResult:
    """What happened to one component: `built` (in `seconds`) or `up-to-date`."""

    component: str
    status: Literal["built", "up-to-date"]
    seconds: float


class BuildFailed(WasikvError):
    """A component could not be built.

    `output` is what its command printed (stdout and stderr, interleaved) and
    `returncode` its exit status (negative: killed by that signal; None: the
    command did not run, or succeeded without writing the component's source).
    """

    def __init__(
        self, component: str, command: str, message: str, output: str = "", returncode: int | None = None
    ) -> None:
        super().__init__(message)
        self.component = component
        self.command = command
        self.output = output
        self.returncode = returncode


def build_env() -> dict[str, str]:
    """The environment of build commands: this one, with wasikv's bin directory first on PATH.

    So `wasikv` and `componentize-py` resolve to the ones installed next to
    the running wasikv, whether or not its virtualenv is activated.
    """
    env = dict(os.environ)
    bin_dir = os.path.dirname(sys.executable)
    env["PATH"] = os.pathsep.join([bin_dir, *(p for p in env.get("PATH", "").split(os.pathsep) if p)])
    return env


# ------------------------------------------------------------------ inputs


def watched_files(build: BuildSpec, exclude: Collection[Path] = ()) -> list[Path]:
    """The files `build.watch` matches, sorted, less `exclude`."""
    excluded = {os.path.normpath(path) for path in exclude}
    found: set[str] = set()
    for pattern in build.watch:
        found.update(_glob(str(build.workdir), pattern))
    return [Path(path) for path in sorted(found - excluded)]


def input_digest(spec: ComponentSpec, *, exclude: Collection[Path] = ()) -> str:
    """The hash of a component's build inputs: its command, workdir, watch globs and watched files.

    The versions of wasikv (its SDK) and componentize-py count too, so an
    upgrade rebuilds. The component's source, and the paths in `exclude`,
    are never inputs.
    """
    build = spec.build
    if build is None:
        raise ValueError(f"component {spec.name!r} has no build section")
    digest = hashlib.sha256()
    header = {
        "command": build.command,
        "workdir": str(build.workdir),
        "watch": list(build.watch),
        "toolchain": [_version("wasikv"), _version("componentize-py")],
    }
    digest.update(json.dumps(header, sort_keys=True).encode())
    for path in watched_files(build, exclude=[spec.source, *exclude]):
        digest.update(os.path.relpath(path, build.workdir).encode("utf-8", "surrogateescape") + b"\0")
        try:
            with path.open("rb") as file:
                digest.update(hashlib.file_digest(file, "sha256").digest())
        except OSError:
            digest.update(b"(unreadable)")
    return digest.hexdigest()


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"


def _glob(workdir: str, pattern: str) -> Iterator[str]:
    segments = [s for s in pattern.replace(os.sep, "/").split("/") if s not in ("", ".")]
    literal: list[str] = []
    while segments and not _GLOB_CHARS.intersection(segments[0]):
        literal.append(segments.pop(0))
    root = os.path.normpath(os.path.join("/" if pattern.startswith("/") else workdir, *literal))
    if not segments:
        if os.path.isfile(root):
            yield root
            return
        segments = ["**"]  # a directory stands for everything in it
    if not os.path.isdir(root):
        return
    regex = _glob_regex(segments)
    max_depth = None if "**" in segments else len(segments) - 1
    for dirpath, dirnames, filenames in os.walk(root):
        relative = os.path.relpath(dirpath, root)
        depth = 0 if relative == "." else relative.count(os.sep) + 1
        if max_depth is not None and depth >= max_depth:
            dirnames[:] = []
        else:
            dirnames[:] = [d for d in dirnames if not _skipped(dirpath, d)]
        prefix = "" if relative == "." else relative.replace(os.sep, "/") + "/"
        for name in filenames:
            if regex.fullmatch(prefix + name):
                yield os.path.join(dirpath, name)


def _skipped(parent: str, name: str) -> bool:
    if name.startswith(".") or name in ("__pycache__", "node_modules"):
        return True
    return os.path.exists(os.path.join(parent, name, "pyvenv.cfg"))


def _glob_regex(segments: list[str]) -> re.Pattern[str]:
    parts: list[str] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            parts.append(".+" if last else "(?:[^/]+/)*")
        else:
            parts.append(_segment_regex(segment) + ("" if last else "/"))
    return re.compile("".join(parts))


def _segment_regex(segment: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(segment):
        char = segment[i]
        if char == "*":
            if not out or out[-1] != "[^/]*":
                out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            start = i + 1
            negated = segment[start : start + 1] in ("!", "^")
            if negated:
                start += 1
            end = segment.find("]", start + 1)
            if end < 0:
                out.append(re.escape(char))
            else:
                body = segment[start:end].replace("\\", "\\\\")
                out.append(f"[^/{body}]" if negated else f"[{body}]")
                i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


# ------------------------------------------------------------------- state


def _state_path(manifest: AppManifest) -> Path:
    return manifest.state_dir / STATE_FILE


def _load_state(path: Path) -> dict[str, dict[str, str]]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != _STATE_VERSION:
        return {}
    components = data.get("components")
    if not isinstance(components, dict):
        return {}
    return {name: entry for name, entry in components.items() if isinstance(entry, dict)}


def _save_state(path: Path, components: dict[str, dict[str, str]]) -> None:
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Like pytest's and ruff's caches: never committed by accident.
        (path.parent / ".gitignore").write_text("# Created by wasikv.\n*\n", "utf-8")
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps({"version": _STATE_VERSION, "components": components}, indent=2), "utf-8")
    partial.replace(path)


# ----------------------------------------------------------------- display


class _Display:
    """One line per component: a live table on a terminal, a line per change elsewhere."""

    def __init__(self, console: Console, names: list[str]) -> None:
        self.console = console
        self.names = names
        self.width = max((len(name) for name in names), default=0)
        self.states: dict[str, tuple[str, str]] = {name: ("waiting", "waiting") for name in names}
        self.started: dict[str, float] = {}
        self.spinners = {name: Spinner("dots", style="cyan") for name in names}
        self.live: Live | None = None
        if console.is_terminal and not console.is_dumb_terminal:
            self.live = Live(get_renderable=self._render, console=console, refresh_per_second=8)

    def __enter__(self) -> _Display:
        if self.live is not None:
            self.live.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def update(self, name: str, state: str, text: str) -> None:
        if state == "building":
            self.started[name] = time.monotonic()
        self.states[name] = (state, text)
        if self.live is not None:
            self.live.refresh()
        else:
            self.console.print(f"{name}: {text}", soft_wrap=True, markup=False, highlight=False, emoji=False)

    def _render(self) -> RenderableType:
        table = Table.grid(padding=(0, 1))
        styles = {"waiting": "dim", "up-to-date": "green", "done": "green", "failed": "red", "skipped": "dim"}
        icons = {"waiting": "·", "up-to-date": "✓", "done": "✓", "failed": "✗", "skipped": "·"}
        for name in self.names:
            state, text = self.states[name]
            if state == "building":
                elapsed = time.monotonic() - self.started.get(name, time.monotonic())
                icon: RenderableType = self.spinners[name]
                status = Text(f"{text} ({elapsed:.1f} s)", style="cyan")
            else:
                icon = Text(icons.get(state, " "), style=styles.get(state, ""))
                status = Text(text, style=styles.get(state, ""))
            table.add_row(icon, Text(name.ljust(self.width), style="bold"), status)
        return table


# ------------------------------------------------------------------- build


def build_app(
    manifest: AppManifest,
    *,
    components: Collection[str] | None = None,
    force: bool = False,
    console: Console | None = None,
) -> list[BuildResult]:
    """Build the components that have a build section (or just `components`), in manifest order.

    Shows progress on `console` (default: stdout). Components whose inputs
    did not change since their last successful build, and whose source
    exists, are skipped unless `force`. The first failure stops the build:
    its command's output is printed and `BuildFailed` raised.
    """
    console = console or Console()
    specs = _selected(manifest, components)
    if not specs:
        console.print(
            "nothing to build: no component has a [component.NAME.build] section",
            markup=False,
            highlight=False,
        )
        return []
    state_path = _state_path(manifest)
    state = _load_state(state_path)
    env = build_env()
    outputs = [spec.source for spec in manifest.components.values()]
    results: list[BuildResult] = []
    with _Display(console, [spec.name for spec in specs]) as display:
        for position, spec in enumerate(specs):
            try:
                result = _build_one(spec, state, state_path, force, env, outputs, display)
            except BuildFailed as failure:
                for later in specs[position + 1 :]:
                    display.update(later.name, "skipped", "not built")
                display.stop()
                _show_output(console, failure)
                raise
            if result.status == "built":
                _save_state(state_path, state)
            results.append(result)
    return results


def _selected(manifest: AppManifest, names: Collection[str] | None) -> list[ComponentSpec]:
    if names is None:
        return [spec for spec in manifest.components.values() if spec.build is not None]
    for name in names:
        spec = manifest.components.get(name)
        if spec is None:
            defined = ", ".join(repr(n) for n in manifest.components) or "none"
            raise ManifestError(f"{manifest.path}: there is no component {name!r}; defined: {defined}")
        if spec.build is None:
            raise ManifestError(
                f"{manifest.path}: component {name!r} has no [component.{toml_key(name)}.build] "
                "section; add one with the command that builds it"
            )
    return [spec for name, spec in manifest.components.items() if name in names]


def _build_one(
    spec: ComponentSpec,
    state: dict[str, dict[str, str]],
    state_path: Path,
    force: bool,
    env: dict[str, str],
    outputs: list[Path],
    display: _Display,
) -> BuildResult:
    build = spec.build
    assert build is not None
    name = spec.name
    if not build.workdir.is_dir():
        display.update(name, "failed", "failed")
        raise BuildFailed(
            name,
            build.command,
            f"component {name!r}: the build workdir {build.workdir} does not exist; create it or fix "
            f"workdir in [component.{toml_key(name)}.build]",
        )
    digest = input_digest(spec, exclude=outputs)
    if not force and state.get(name, {}).get("digest") == digest and spec.source.is_file():
        display.update(name, "up-to-date", "up to date")
        return BuildResult(name, "up-to-date", 0.0)
    if state.pop(name, None) is not None:
        _save_state(state_path, state)  # a failed or interrupted build must run again
    display.update(name, "building", "building")
    started = time.monotonic()
    done = subprocess.run(
        build.command,
        shell=True,
        cwd=build.workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        check=False,
    )
    seconds = time.monotonic() - started
    output = done.stdout.decode("utf-8", "replace")
    if done.returncode != 0:
        how = (
            f"was killed by signal {-done.returncode}"
            if done.returncode < 0
            else f"exited with status {done.returncode}"
        )
        display.update(name, "failed", f"failed after {seconds:.1f} s")
        raise BuildFailed(
            name,
            build.command,
            f"component {name!r} failed to build: `{build.command}` {how} (in {build.workdir})",
            output,
            done.returncode,
        )
    if not spec.source.is_file():
        display.update(name, "failed", f"failed after {seconds:.1f} s")
        raise BuildFailed(
            name,
            build.command,
            f"component {name!r}: `{build.command}` succeeded but did not write the component's source "
            f"{spec.source}; make the command write it, or fix source in [component.{toml_key(name)}]",
            output,
        )
    # Hash what the build saw at its end, so files the command itself writes do not count as changes.
    state[name] = {
        "digest": input_digest(spec, exclude=outputs),
        "command": build.command,
        "source": str(spec.source),
    }
    display.update(name, "done", f"done in {seconds:.1f} s")
    return BuildResult(name, "built", seconds)


def _show_output(console: Console, failure: BuildFailed) -> None:
    if not failure.output:
        if failure.returncode is not None:
            console.print("(the build command printed nothing)", markup=False, highlight=False)
        return
    console.print(
        f"output of `{failure.command}` (component {failure.component}):",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    console.print(Text.from_ansi(failure.output.rstrip("\n")), soft_wrap=True, highlight=False)
