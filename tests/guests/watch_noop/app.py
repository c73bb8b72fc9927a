"""The smallest watcher: does nothing, so a benchmark measures the trigger path alone."""

from wasikv_sdk import key_value, watch


class Watcher(watch.Watcher):
    def on_set(self, bucket: key_value.Bucket, key: str, value: bytes) -> None:
        pass

    def on_delete(self, bucket: key_value.Bucket, key: str) -> None:
        pass
