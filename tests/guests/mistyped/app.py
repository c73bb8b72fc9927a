"""A guest built against the 0.2.0-draft shapes relabelled as draft2 (a mistyped component).

`list-keys` takes and returns u64 cursors and `increment` takes a u64 delta,
under the interface names wasikv implements with other types. wasikv must
refuse it before it runs; if it ever ran, argv[1] picks the call to make.
"""

import sys

from wit_world import exports
from wit_world.imports import atomics, store


class Run(exports.Run):
    def run(self) -> None:
        bucket = store.open("default")
        if sys.argv[1:] == ["increment"]:
            print(atomics.increment(bucket, "n", 1))
        else:
            print(bucket.list_keys(None))
