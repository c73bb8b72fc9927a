"""Spin's componentize-py build commands, in wasikv's terms.

spin-python-sdk's manifests build with `componentize-py -w spin-http
componentize app -o app.wasm`: the world comes from spin-sdk's
`componentize-py.toml`, which wasikv's environment never has (the two SDKs
cannot share one), so componentize-py fails with a Rust backtrace about a
missing `wit` directory. wasikv runs that exact command as `wasikv
componentize . -m app -w wasikv:app/spin-http -o app.wasm` instead (the
world `wasikv_sdk.spin` is built for), and refuses, before running it, a
componentize-py command for any other Spin world, saying what to write. A
command that brings its own WIT (`-d`) runs as written.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

__all__ = ["SpinCommand", "spin_command"]

#: The world spin-sdk 3 apps name, and the wasikv world of the same shape.
SPIN_HTTP = "spin-http"
WASIKV_SPIN_HTTP = "wasikv:app/spin-http"

_WRITE_INSTEAD = f"wasikv componentize . -w {WASIKV_SPIN_HTTP} -o app.wasm"
# Shell syntax that makes a command more than one componentize-py run.
_SHELL = frozenset({"&&", "||", ";", "|", "&", ">", ">>", "<"})


@dataclass(frozen=True)
class SpinCommand:
    """A build command that runs componentize-py for a Spin world.

    `world` is that world; `translated` the wasikv command to run in its
    place, or None when there is none (`problem` then says what to write).
    """

    world: str
    translated: str | None
    problem: str | None = None


def spin_command(command: str) -> SpinCommand | None:
    """What to do with `command` if it runs componentize-py for a Spin world, or None if it does not.

    Only a single `componentize-py -w spin-http componentize MODULE [-p DIR]...
    [-o OUT]` is translated; a Spin world in any other form gets a `problem`.
    """
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    world = _spin_world(words)
    if world is None:
        return None
    if world != SPIN_HTTP:
        return SpinCommand(
            world,
            None,
            f"it builds for Spin's world {world!r}, which only spin-sdk provides; wasikv builds "
            f'spin-sdk 3 HTTP apps for {WASIKV_SPIN_HTTP}: write command = "{_WRITE_INSTEAD}"',
        )
    translated = _translate(words)
    if translated is None:
        return SpinCommand(
            world,
            None,
            "it is Spin's componentize-py command, which needs spin-sdk's WIT; "
            f'write command = "{_WRITE_INSTEAD}" (with -m MODULE and -p DIR as needed)',
        )
    return SpinCommand(world, translated)


def _spin_world(words: list[str]) -> str | None:
    """The Spin world a componentize-py run among `words` targets from spin-sdk, if any.

    A command that gives its own WIT (`-d`) finds its world there, not in spin-sdk.
    """
    if not any(word.rsplit("/", 1)[-1] == "componentize-py" for word in words):
        return None
    if any(word in ("-d", "--wit-path") or word.startswith("--wit-path=") for word in words):
        return None
    for index, word in enumerate(words):
        if word in ("-w", "--world") and index + 1 < len(words):
            value = words[index + 1]
        elif word.startswith("--world="):
            value = word.partition("=")[2]
        else:
            continue
        if value.startswith(("spin-", "spin:", "fermyon:spin")):
            return value
    return None


def _translate(words: list[str]) -> str | None:
    """`wasikv componentize` for one `componentize-py -w spin-http componentize ...`, or None."""
    if words[0].rsplit("/", 1)[-1] != "componentize-py" or _SHELL.intersection(words):
        return None
    rest = words[1:]
    if rest[:3] not in (["-w", SPIN_HTTP, "componentize"], ["--world", SPIN_HTTP, "componentize"]):
        return None
    module: str | None = None
    output = "index.wasm"  # componentize-py's default
    paths: list[str] = []
    here = False  # componentize-py's default path is ".", wasikv componentize's app directory
    options = iter(rest[3:])
    for word in options:
        if word in ("-p", "--python-path", "-o", "--output"):
            value = next(options, None)
            if value is None:
                return None
            if word in ("-o", "--output"):
                output = value
            elif value.rstrip("/") == ".":
                here = True
            else:
                paths.append(value)
        elif word.startswith("-") or module is not None or not word.isidentifier():
            return None
        else:
            module = word
    if module is None or (paths and not here):
        return None
    command = ["wasikv", "componentize", ".", "-m", module, "-w", WASIKV_SPIN_HTTP, "-o", output]
    for path in paths:
        command += ["-p", path]
    return shlex.join(command)
