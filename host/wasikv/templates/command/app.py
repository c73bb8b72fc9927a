"""{{name}}: a command component that counts its own runs in the `default` store."""

from wasikv_sdk import key_value
from wasikv_sdk.wit import exports


class Run(exports.Run):
    def run(self) -> None:
        with key_value.open_default() as bucket:
            runs = bucket.increment("runs")
        print(f"hello from {{name}}: run {runs}")
