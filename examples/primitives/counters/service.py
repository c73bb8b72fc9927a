"""Host side: `python service.py STORE_URL [report | reset NAME]`."""

import sys

import wasikv
from wasikv_sdk.counters import Counter, all_counters


def main(url: str, command: str = "report", name: str = "") -> None:
    store = wasikv.open_store(url)
    bucket = wasikv.Bucket("default", store, wasikv.Limits())
    try:
        if command == "reset":
            print(f"service: {name} was {Counter(bucket, name).get_set(0)}, now 0")
        for counter, value in all_counters(bucket).items():
            print(f"service: {counter} = {value}")
    finally:
        store.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
