"""`wasikv build`: run each component's build command, skipping the ones whose inputs did not change.

A component's inputs are the files its `watch` globs match (relative to the
build's workdir) and the command itself. Hidden directories, `__pycache__`,
`node_modules` and virtualenvs are never searched, and no component's source
is an input of any build. After a successful build the inputs' hash is kept
in `.wasikv/build-state.json` next to the manifest; the next build skips the
component while the hash is the same and its source file exists. A build
that fails or is interrupted forgets the component's hash, so it runs again.

One concept per module:

- `globs`: the `watch` patterns, translated to the files they match;
- `inputs`: a component's build inputs and their hash;
- `state`: `.wasikv/build-state.json`, what was built from which inputs;
- `display`: the progress display (a live table on a terminal);
- `results`: what a build reports (`BuildResult`, `BuildFailed`);
- `spin_command`: Spin's componentize-py build command, run as `wasikv componentize`;
- `guest_packages`: a guest's `requirements.txt`, installed for its build only;
- `run`: the orchestration, `build_app`;
- `changes`: which components changed while an app runs (`wasikv up --watch`).
"""

from __future__ import annotations

from .inputs import input_digest, watched_files
from .results import BuildFailed, BuildResult
from .run import build_app, build_env
from .state import STATE_FILE

__all__ = [
    "STATE_FILE",
    "BuildFailed",
    "BuildResult",
    "build_app",
    "build_env",
    "input_digest",
    "watched_files",
]
