"""A guest mixing two WITs of wasi:keyvalue: a bucket of one cannot be passed to the other."""

from wit_world import exports
from wit_world.imports import batch, wasi_keyvalue_store_0_2_0_draft, wasi_keyvalue_store_0_2_0_draft2


class Run(exports.Run):
    def run(self) -> None:
        wasi_keyvalue_store_0_2_0_draft.open("default").set("k", b"v")
        print(batch.get_many(wasi_keyvalue_store_0_2_0_draft2.open("default"), ["k"]))
