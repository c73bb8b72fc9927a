"""The Lua scripts of the Redis store (one ``.lua`` file each) and the key names they take.

Every script is its shebang line, then ``helpers.lua``, then its own body:
Redis runs each as one atomic step (see docs/concepts/redis-store.md).
"""

from __future__ import annotations

from importlib.resources import files

#: Ends every prefix in key names (``P|seq``, ``P|k:{key}``); no prefix may contain it.
SEPARATOR = "|"
#: The names of a store's metadata keys, in the order the scripts take them
#: as KEYS; ``P seq`` in the old layout moves last (see `redis_migration`).
META_NAMES = (b"seq", b"versions", b"index", b"tombstones", b"watermark", b"changes")


def load(name: str) -> str:
    """The script `name` (``swap`` for ``swap.lua``) with the shared helpers after its shebang."""
    here = files(__name__)
    shebang, _, body = here.joinpath(f"{name}.lua").read_text(encoding="utf-8").partition("\n")
    helpers = here.joinpath("helpers.lua").read_text(encoding="utf-8")
    return f"{shebang}\n{helpers}\n{body}"
