"""Reports what the host gives a command component: argv, environment, filesystem.

argv[1] selects the behaviour: `report` prints JSON; `fail` raises (exit 1);
`trap` hits an unreachable path inside the host call stack (a real trap).
"""

import json
import os
import sys

from wasikv_sdk.wit import exports


class Run(exports.Run):
    def run(self) -> None:
        mode = sys.argv[1] if len(sys.argv) > 1 else "report"
        if mode == "fail":
            print("failing on purpose", file=sys.stderr)
            raise RuntimeError("failing on purpose")
        if mode == "trap":
            # Unbounded recursion exhausts the wasm stack: a genuine trap.
            sys.setrecursionlimit(10**9)

            def deeper(n: int) -> int:
                return deeper(n + 1) + 1

            deeper(0)
        try:
            root = sorted(os.listdir("/"))
        except OSError as exc:
            root = f"error: {type(exc).__name__}"
        print(json.dumps({"argv": sys.argv, "env": dict(os.environ), "root": root}))
