"""Spin-style applications: the `wasikv.toml` manifest, the runtime config, routes and builds.

`load_app` reads and checks an application; `Router` matches request paths to
its HTTP triggers; `wasikv.build.build_app` runs its build commands (kept
out of this namespace so serving does not import the progress display).
"""

from __future__ import annotations

from .loader import LoadedApp, load_app
from .manifest import (
    AppManifest,
    BuildSpec,
    ComponentSpec,
    HttpTrigger,
    KeyValueTrigger,
    ManifestError,
    load_manifest,
)
from .routes import RouteError, RouteMatch, Router
from .runtime_config import RuntimeConfigError, load_runtime_config

__all__ = [
    "AppManifest",
    "BuildSpec",
    "ComponentSpec",
    "HttpTrigger",
    "KeyValueTrigger",
    "LoadedApp",
    "ManifestError",
    "RouteError",
    "RouteMatch",
    "Router",
    "RuntimeConfigError",
    "load_app",
    "load_manifest",
    "load_runtime_config",
]
