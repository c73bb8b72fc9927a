"""The suite's command guests, built as one component (one build and compile instead of four).

`<component> GUEST [ARGS...]` runs GUEST, which then sees argv as if it had
been built alone (`[<component>, ARGS...]`):

- `probe`: what the host gives a command (probe.py);
- `conformance`: every wasi:keyvalue function through the raw bindings (conformance.py);
- `sdk`: the Pythonic layer `wasikv_sdk.key_value` (sdk_layer.py);
- `primitives`: the coordination primitives (primitives.py).
"""

import sys

import conformance
import primitives
import probe
import sdk_layer

import wasikv_sdk.wit.exports

GUESTS = {"probe": probe, "conformance": conformance, "sdk": sdk_layer, "primitives": primitives}


class Run(wasikv_sdk.wit.exports.Run):
    def run(self) -> None:
        name = sys.argv[1] if len(sys.argv) > 1 else ""
        guest = GUESTS.get(name)
        if guest is None:
            raise ValueError(f"first argument {name!r}: expected one of {sorted(GUESTS)}")
        del sys.argv[1]
        guest.Run().run()
