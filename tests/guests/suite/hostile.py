"""The hostile guest (tests/guests/suite/app.py routes to it): misbehaviour on request.

The behaviour is chosen by argv[1] (the command), the request path's last
segment (HTTP, under `/hostile/`: `/hostile/loop`) or the changed key's last
segment (the watcher, keys under `hostile/`: `hostile/b/loop`):

- `ok`: behave (print/answer "ok"; a watcher records the key under `seen/`);
- `count`: increment the counter `hits` in the default store and report it
  (a store failure escapes: a 500 with the traceback on stderr);
- `loop`: spin forever in pure Python;
- `sleep`: sleep for an hour (blocks in a host call, not in wasm);
- `nap`: sleep for 3 seconds (blocks in a host call, then returns);
- `echo`: (watcher) write the changed key again with the same value, after
  counting the call in `echoes/KEY` (a watcher that would feed itself);
- `alloc`: allocate 1 MiB blocks until refused, then report how far it got;
- `hog`: allocate until refused and keep the memory (then loop forever);
- `oom`: fill memory down to its last small block and keep it: an uncaught MemoryError
  with no memory left (under some caps not even to print its traceback);
- `recurse`: unbounded Python recursion (a RecursionError, caught);
- `overflow`: a C-level stack overflow (a genuine wasm trap);
- `cas`: open as many cas handles on key `big` as the host allows, report the count;
- `bigbatch`: one set-many of two 1.5 MiB values (past what one call may carry), raw
  bindings (a trap: wasmtime refuses the call before the host sees it);
- `bigbatch-sdk`: the same through `wasikv_sdk.key_value`, reporting its error;
- `bigbody`: (HTTP) answer with a 3 MiB body; `badheader`: answer with a header value
  holding a NUL; `framing`: answer with a wrong content-length and hop-by-hop headers;
  `bigheaders`: answer with 80 KiB of headers; `manyheaders`: with 1000 small ones;
- `print-N` (`eprint-N`): write N MiB of 1 KiB lines to stdout (stderr), report the count;
- `ansi`: print lines holding terminal escapes and other control characters (both streams).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

from wasikv_sdk import http, key_value
from wasikv_sdk.errors import StoreError
from wasikv_sdk.wit.imports import atomics, batch
from wasikv_sdk.wit.imports import wasi_keyvalue_store as store

blocks_kept: list[bytearray] = []
hoard: list[list[bytes]] = []


def spin() -> None:
    n = 0
    while True:
        n += 1


def allocate(keep: bool) -> dict[str, Any]:
    blocks: list[bytearray] = []
    try:
        while True:
            blocks.append(bytearray(1 << 20))
    except MemoryError:
        got = len(blocks)
    if keep:
        blocks_kept.extend(blocks)
        spin()
    blocks.clear()
    return {"allocated_mib": got, "memory_error": True}


def exhaust() -> None:
    # Memory filled down to its last small block and kept (in a global: a
    # local would be freed as the error leaves its frame), in short lists
    # (one growing list would fail on a big block first).
    hoard.append([])

    def fill(size: int) -> None:
        while True:
            if len(hoard[-1]) == 100:
                hoard.append([])
            hoard[-1].append(bytes(size))

    for size in (1 << 16, 1 << 10):
        try:
            fill(size)
        except MemoryError:
            pass
    fill(1)


def recurse(depth: int = 0) -> int:
    return recurse(depth + 1) + 1


def overflow() -> None:
    sys.setrecursionlimit(10**9)
    nested: list[Any] = []
    for _ in range(10**6):
        nested = [nested]
    repr(nested)


def cas_handles() -> dict[str, Any]:
    bucket = store.open("default")
    handles = []
    error = None
    try:
        while True:
            handles.append(atomics.Cas.new(bucket, "big"))
    except Exception as exc:  # the host refuses with error::other past its limit
        error = f"{type(exc).__name__}: {getattr(exc, 'value', exc)}"
    count = len(handles)
    sizes = {len(h.current() or b"") for h in handles[:3]}
    for h in handles:
        h.__exit__(None, None, None)
    return {"handles": count, "error": error, "value_sizes": sorted(sizes)}


def flood(stream: TextIO, mib: int) -> dict[str, Any]:
    chunk = ("x" * 1023 + "\n") * 1024
    for _ in range(mib):
        stream.write(chunk)
    stream.flush()
    return {"printed_mib": mib}


#: Lines that would repaint a terminal or forge a log line if logged as they are.
CONTROL_LINES = (
    "\x1b[2K\x1b[1Gwasikv: forged by the guest\x1b[0m",
    "bell\x07 nul\x00 backspace\x08 c1-csi\u009b31m end",
    "carriage\rwasikv: overwritten",
    "tab\tkept",
)


def control_characters() -> dict[str, Any]:
    for line in CONTROL_LINES:
        print(line, flush=True)
        print(line, file=sys.stderr, flush=True)
    return {"printed": len(CONTROL_LINES)}


def behave(mode: str) -> dict[str, Any]:
    if mode.startswith(("print-", "eprint-")):
        stream = sys.stderr if mode.startswith("e") else sys.stdout
        return flood(stream, int(mode.partition("-")[2]))
    if mode == "ansi":
        return control_characters()
    if mode == "ok":
        return {"ok": True}
    if mode == "count":
        with key_value.open_default() as bucket:
            return {"hits": bucket.increment("hits")}
    if mode == "loop":
        spin()
    if mode == "sleep":
        time.sleep(3600)
        return {"slept": True}
    if mode == "nap":
        time.sleep(3)
        return {"slept": True}
    if mode == "alloc":
        return allocate(keep=False)
    if mode == "hog":
        return allocate(keep=True)
    if mode == "oom":
        exhaust()
    if mode == "recurse":
        try:
            recurse()
        except RecursionError:
            return {"recursion_error": True}
    if mode == "overflow":
        overflow()
    if mode == "cas":
        return cas_handles()
    if mode == "bigbatch":
        batch.set_many(store.open("default"), [("one", bytes(1536 * 1024)), ("two", bytes(1536 * 1024))])
        return {"stored": True}
    if mode == "bigbatch-sdk":
        with key_value.open_default() as bucket:
            try:
                bucket.set_many({"one": bytes(1536 * 1024), "two": bytes(1536 * 1024)})
            except StoreError as exc:
                return {"error": str(exc)}
        return {"stored": True}
    raise ValueError(f"unknown mode {mode!r}")


def run() -> None:
    """The command: argv[1] names the behaviour."""
    mode = sys.argv[1] if len(sys.argv) > 1 else "ok"
    print(json.dumps(behave(mode)), flush=True)


RESPONSES = {
    "bigbody": lambda: http.Response(200, {"content-type": "application/octet-stream"}, bytes(3 << 20)),
    "badheader": lambda: http.Response(200, [("x-bad", "a\x00b")], b"nul"),
    "latin": lambda: http.Response(200, [("x-name", "\u0141ukasz")], b"not latin-1"),
    "badname": lambda: http.Response(200, [("bad name", "v")], b"space in a name"),
    "bigheaders": lambda: http.Response(200, [(f"x-big-{i}", "v" * 1000) for i in range(80)], b"big"),
    "manyheaders": lambda: http.Response(200, [(f"x-{i}", "1") for i in range(1000)], b"many"),
    "framing": lambda: http.Response(
        200,
        [
            ("content-length", "1000"),
            ("transfer-encoding", "chunked"),
            ("connection", "close"),
            ("x-ok", "1"),
        ],
        b"short body",
    ),
}


def handle(request: http.Request) -> http.Response:
    """An HTTP request: the path's last segment names the behaviour."""
    mode = request.path.rstrip("/").rsplit("/", 1)[-1]
    if mode in RESPONSES:
        return RESPONSES[mode]()
    body = json.dumps(behave(mode)).encode()
    return http.Response(200, {"content-type": "application/json"}, body)


def on_set(bucket: key_value.Bucket, key: str, value: bytes) -> None:
    """A watched write: the key's last segment names the behaviour, recorded under `seen/KEY`."""
    mode = key.rsplit("/", 1)[-1]
    if mode == "echo":
        bucket.increment(f"echoes/{key}")
        bucket.set(key, value)
        return
    result = behave(mode)
    try:
        bucket.set(f"seen/{key}", json.dumps(result).encode())
    except StoreError:
        pass
