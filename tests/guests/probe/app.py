"""Reports what the host gives a command component: argv, environment, filesystem.

argv[1] selects the behaviour: `report` prints JSON; `fail` raises (exit 1);
`trap` hits an unreachable path inside the host call stack (a real trap);
`variables NAME` prints its variables (wasi:config) and NAME's value as JSON.
"""

import json
import os
import sys

from wasikv_sdk import variables
from wasikv_sdk.wit import exports


class Run(exports.Run):
    def run(self) -> None:
        mode = sys.argv[1] if len(sys.argv) > 1 else "report"
        if mode == "fail":
            print("failing on purpose", file=sys.stderr)
            raise RuntimeError("failing on purpose")
        if mode == "variables":
            report: dict = {"all": variables.get_all()}
            try:
                report["get"] = variables.get(sys.argv[2])
            except variables.NoSuchVariable as exc:
                report["error"] = f"{type(exc).__name__}: {exc}"
            print(json.dumps(report))
            return
        if mode == "trap":
            # repr recurses in C: the wasm stack overflows at once (a genuine trap).
            sys.setrecursionlimit(10**9)
            nested: list = []
            for _ in range(10**6):
                nested = [nested]
            repr(nested)
        try:
            root = sorted(os.listdir("/"))
        except OSError as exc:
            root = f"error: {type(exc).__name__}"
        print(json.dumps({"argv": sys.argv, "env": dict(os.environ), "root": root}))
