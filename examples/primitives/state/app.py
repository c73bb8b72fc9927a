"""Moves an object in a shared scene: `state.wasm TOKEN KEY X Y`."""

import sys

from wasikv_sdk import key_value
from wasikv_sdk.coordination import ResourceLockedError
from wasikv_sdk.state import StateDictionary
from wasikv_sdk.wit import exports


class Run(exports.Run):
    def run(self) -> None:
        token, key, x, y = sys.argv[1:5]
        with key_value.open_default() as bucket:
            scene = StateDictionary(bucket, "scene")
            try:
                scene.update_locks(token, acquire={key: 30.0})
            except ResourceLockedError as exc:
                print(f"guest {token}: {exc.keys} locked by someone else")
                return
            scene.update_state(token, updates={key: [float(x), float(y)], f"{key}.moved_by": token})
            scene.update_locks(token, release=[key])
        print(f"guest {token}: moved {key} to {x},{y}")
