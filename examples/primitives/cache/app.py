"""Single-flight report: `cache.wasm USER`."""

import sys
import time

from wasikv_sdk import key_value
from wasikv_sdk.cache import Cache
from wasikv_sdk.wit import exports


class Run(exports.Run):
    def run(self) -> None:
        user = sys.argv[1] if len(sys.argv) > 1 else "42"
        with key_value.open_default() as bucket:

            def build() -> dict[str, object]:
                time.sleep(2)  # an expensive computation
                return {"user": user, "built_by": "guest", "at": time.time()}

            report = Cache(bucket, f"user:{user}").get_or_compute("report", build, ttl=60)
        print(f"guest: {report}")
