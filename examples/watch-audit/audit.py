"""A key-value watcher: appends every change it is told about to an audit log.

Entries go to the `audit` store as `entry/00000001`, `entry/00000002`, ...
(JSON: operation, key, value size and a preview of the value), numbered by
the counter `count`. The host delivers each change at least once, so after a
crash an entry may appear twice; it never goes missing.
"""

import json

from wasikv_sdk import key_value, watch

PREVIEW = 80


def append(entry: dict) -> None:
    with key_value.open("audit") as audit:
        number = audit.increment("count")
        audit.set(f"entry/{number:08d}", json.dumps(entry).encode())
    # `wasikv up` logs what a watcher prints, as `[audit] ...`.
    print(f"audited {entry['op']} {entry['key']} as entry/{number:08d}")


class Watcher(watch.Watcher):
    def on_set(self, bucket: key_value.Bucket, key: str, value: bytes) -> None:
        preview = value[:PREVIEW].decode("utf-8", "replace")
        append({"op": "set", "store": bucket.label, "key": key, "size": len(value), "preview": preview})

    def on_delete(self, bucket: key_value.Bucket, key: str) -> None:
        append({"op": "delete", "store": bucket.label, "key": key})
