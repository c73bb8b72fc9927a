"""Host side: `python service.py STORE_URL USER [clear]`."""

import sys
import time

import wasikv
from wasikv_sdk.cache import Cache


def main(url: str, user: str, command: str = "get") -> None:
    store = wasikv.open_store(url)
    cache = Cache(wasikv.Bucket("default", store, wasikv.Limits()), f"user:{user}")
    try:
        if command == "clear":
            print(f"service: removed {cache.clear()} entries of user {user}")
            return

        def build() -> dict[str, object]:
            time.sleep(2)  # an expensive computation
            return {"user": user, "built_by": "service", "at": time.time()}

        print(f"service: {cache.get_or_compute('report', build, ttl=60)}")
    finally:
        store.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
