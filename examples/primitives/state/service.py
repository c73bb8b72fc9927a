"""Host side: `python service.py STORE_URL watch SECONDS` or `... hold TOKEN KEY SECONDS`."""

import sys
import time

import wasikv
from wasikv_sdk.state import StateDictionary


def main(url: str, command: str, *args: str) -> None:
    store = wasikv.open_store(url)
    scene = StateDictionary(wasikv.Bucket("default", store, wasikv.Limits()), "scene")
    try:
        if command == "watch":
            for change in scene.subscribe().changes(float(args[0])):
                print(f"service: updates {change.updates} removals {sorted(change.removals)}", flush=True)
        elif command == "hold":
            token, key, seconds = args
            scene.update_locks(token, acquire={key: float(seconds)})
            print(f"service: {token} holds {key} for {seconds}s", flush=True)
            time.sleep(float(seconds))
            scene.update_locks(token, release=[key])
    finally:
        store.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
