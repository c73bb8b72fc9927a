"""Counts a visit and takes a ticket: `counters.wasm [PAGE]`."""

import sys

from wasikv_sdk import key_value
from wasikv_sdk.counters import Counter
from wasikv_sdk.wit import exports


class Run(exports.Run):
    def run(self) -> None:
        page = sys.argv[1] if len(sys.argv) > 1 else "home"
        with key_value.open_default() as bucket:
            visits = Counter(bucket, f"visits/{page}").increment()
            ticket = Counter(bucket, "tickets").get_increment()
        print(f"guest: visit {visits} of {page}, ticket {ticket}")
