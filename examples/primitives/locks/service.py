"""Host side: the same deposits as the guest, under the same Lock: `python service.py STORE_URL [COUNT]`."""

import sys

import wasikv
from wasikv_sdk.locks import Lock


def main(url: str, count: str = "100") -> None:
    store = wasikv.open_store(url)
    bucket = wasikv.Bucket("default", store, wasikv.Limits())
    try:
        for _ in range(int(count)):
            with Lock(bucket, "balance", ttl=10, tries=10000, sleep=0.002, max_sleep=0.05):
                balance = int(bucket.get("balance") or b"0")
                bucket.set("balance", str(balance + 1).encode())
        print(f"service: {count} deposits done; balance is now {bucket.get('balance')!r}")
    finally:
        store.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
