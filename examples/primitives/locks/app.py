"""Lock-protected read-modify-write of a plain key: `locks.wasm [COUNT]`."""

import sys

from wasikv_sdk import key_value
from wasikv_sdk.locks import Lock
from wasikv_sdk.wit import exports


class Run(exports.Run):
    def run(self) -> None:
        count = int(sys.argv[1]) if len(sys.argv) > 1 else 100
        with key_value.open_default() as bucket:
            for _ in range(count):
                with Lock(bucket, "balance", ttl=10, tries=10000, sleep=0.002, max_sleep=0.05):
                    balance = int(bucket.get("balance") or b"0")
                    bucket.set("balance", str(balance + 1).encode())
        print(f"guest: {count} deposits done")
