"""The orchestration of `wasikv build`: run each component's build command when its inputs changed.

Components build one at a time, in manifest order; the first failure stops
the build (the components after it are shown as not built). The build state
is saved after every component built, and a component's entry is dropped
before its command runs, so a failed or interrupted build runs again. A
successful command's output is not shown, but for its lines that start with
`note: ` (`wasikv componentize` says so which requirements it skipped).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Collection
from pathlib import Path

from rich.console import Console

from ..app._toml import toml_key
from ..app.manifest import AppManifest, ComponentSpec, ManifestError
from .display import Display, show_output
from .inputs import input_digest
from .results import BuildFailed, BuildResult
from .spin_command import spin_command
from .state import BuildState, load_state, save_state, state_path

__all__ = ["NOTE", "build_app", "build_env"]

#: How a build command's line starts that is shown even when the command succeeds.
NOTE = "note: "


def build_env() -> dict[str, str]:
    """The environment of build commands: this one, with wasikv's bin directory first on PATH.

    So `wasikv` and `componentize-py` resolve to the ones installed next to
    the running wasikv, whether or not its virtualenv is activated.
    """
    env = dict(os.environ)
    bin_dir = os.path.dirname(sys.executable)
    env["PATH"] = os.pathsep.join([bin_dir, *(p for p in env.get("PATH", "").split(os.pathsep) if p)])
    return env


def build_app(
    manifest: AppManifest,
    *,
    components: Collection[str] | None = None,
    force: bool = False,
    console: Console | None = None,
    progress: Console | None = None,
    quiet: bool = False,
) -> list[BuildResult]:
    """Build the components that have a build section (or just `components`), in manifest order.

    Shows progress on `console` (default: stdout), as a live table on
    `progress` when given (see `Display`; `quiet`: outcomes only). Components whose inputs
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
    path = state_path(manifest)
    state = load_state(path)
    env = build_env()
    outputs = [spec.source for spec in manifest.components.values()]
    results: list[BuildResult] = []
    names = [spec.name for spec in specs]
    with Display(console, names, live_console=progress, quiet=quiet) as display:
        for position, spec in enumerate(specs):
            try:
                result = _build_one(spec, state, path, force, env, outputs, display)
            except BuildFailed as failure:
                for later in specs[position + 1 :]:
                    display.update(later.name, "skipped", "not built")
                display.stop()
                show_output(console, failure)
                raise
            if result.status == "built":
                save_state(path, state)
            results.append(result)
    return results


def _selected(manifest: AppManifest, names: Collection[str] | None) -> list[ComponentSpec]:
    """The components to build, in manifest order; a named one must exist and have a build section."""
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
    state: BuildState,
    path: Path,
    force: bool,
    env: dict[str, str],
    outputs: list[Path],
    display: Display,
) -> BuildResult:
    """Build one component unless it is up to date, recording a success in `state`."""
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
        save_state(path, state)  # a failed or interrupted build must run again
    command = _command(spec, display)
    display.update(name, "building", "building")
    started = time.monotonic()
    done = _run(command, build.workdir, env)
    seconds = time.monotonic() - started
    failure = _failure(spec, command, done)
    if failure is not None:
        display.update(name, "failed", f"failed after {seconds:.1f} s")
        raise failure
    for line in done.stdout.decode("utf-8", "replace").splitlines():
        if line.startswith(NOTE):
            display.note(f"{name}: {line}")
    # Hash what the build saw at its end, so files the command itself writes do not count as changes.
    state[name] = {
        "digest": input_digest(spec, exclude=outputs),
        "command": build.command,
        "source": str(spec.source),
    }
    display.update(name, "done", f"done in {seconds:.1f} s")
    return BuildResult(name, "built", seconds)


def _command(spec: ComponentSpec, display: Display) -> str:
    """The command that builds `spec`: its own, or wasikv's for Spin's componentize-py command.

    A componentize-py command for a Spin world wasikv cannot translate is
    refused before it runs (it would fail with a Rust backtrace).
    """
    build = spec.build
    assert build is not None
    spin = spin_command(build.command)
    if spin is None:
        return build.command
    if spin.translated is None:
        display.update(spec.name, "failed", "failed")
        raise BuildFailed(
            spec.name,
            build.command,
            f"component {spec.name!r}: `{build.command}` in [component.{toml_key(spec.name)}.build] "
            f"cannot build here: {spin.problem}",
        )
    display.note(
        f"{spec.name}: `{build.command}` is Spin's build command; running `{spin.translated}`, "
        "its wasikv equivalent"
    )
    return spin.translated


def _run(command: str, workdir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    """Run a build command through the shell in its workdir, stdout and stderr interleaved."""
    return subprocess.run(
        command,
        shell=True,
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        check=False,
    )


def _failure(
    spec: ComponentSpec, command: str, done: subprocess.CompletedProcess[bytes]
) -> BuildFailed | None:
    """Why the finished build `command` failed (it exited non-zero, or wrote no source), or None."""
    build = spec.build
    assert build is not None
    name = spec.name
    output = done.stdout.decode("utf-8", "replace")
    if done.returncode != 0:
        how = (
            f"was killed by signal {-done.returncode}"
            if done.returncode < 0
            else f"exited with status {done.returncode}"
        )
        return BuildFailed(
            name,
            command,
            f"component {name!r} failed to build: `{command}` {how} (in {build.workdir})",
            output,
            done.returncode,
        )
    if not spec.source.is_file():
        return BuildFailed(
            name,
            command,
            f"component {name!r}: `{command}` succeeded but did not write the component's source "
            f"{spec.source}; make the command write it, or fix source in [component.{toml_key(name)}]",
            output,
        )
    return None
