"""`make test-fast`'s guard: no Python process of the run may build a guest component.

`make test-fast` puts this directory on PYTHONPATH and sets WASIKV_TEST_NO_BUILD,
so pytest and every `wasikv` it starts (`wasikv up` on an app's sources, say)
fail loudly on a build instead of spending half a minute on it: a test that
builds but is not marked `component` shows up as a failure, never as a slow
"fast" suite.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any, NoReturn


def _refuse(*_args: object, **_kwargs: object) -> NoReturn:
    raise RuntimeError(
        "WASIKV_TEST_NO_BUILD is set (make test-fast) but this test builds a guest component: "
        "mark it @pytest.mark.component (tests/conftest.py marks tests using the build helpers)"
    )


class _NoBuilds:
    """Finds `wasikv.build.guest_build` as usual, then replaces its builders with `_refuse`.

    Patching on import, rather than importing wasikv here, leaves processes
    that never use wasikv (and tests of what a bare import loads) untouched.
    """

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name != "wasikv.build.guest_build":
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec: ModuleSpec | None = find(name, path, target)
            if spec is not None and spec.loader is not None:
                loader = spec.loader

                def exec_module(module: ModuleType, execute: Any = loader.exec_module) -> None:
                    execute(module)
                    module.componentize = _refuse  # type: ignore[attr-defined]
                    module.build_cached = _refuse  # type: ignore[attr-defined]

                loader.exec_module = exec_module  # type: ignore[method-assign]
                return spec
        return None


if os.environ.get("WASIKV_TEST_NO_BUILD"):
    sys.meta_path.insert(0, _NoBuilds())  # type: ignore[arg-type]
