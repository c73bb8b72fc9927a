"""The Spin interfaces wasikv does not provide, and what is said of them.

Spin's SDKs make apps import more than they use: a spin-sdk 3.4.1 app
(componentize-py keeps every import of its world) imports
`fermyon:spin/{llm,redis,mqtt,postgres,mysql,sqlite,rdbms-types}@2.0.0`,
`spin:postgres/postgres@3.0.0` and `@4.0.0` and `spin:sqlite/sqlite@3.0.0`
even when it only answers "hello". wasikv serves Spin's key-value and
variables (`KEY_VALUE`, `VARIABLES` in this package); every other interface
of Spin's packages is named here, so that `wasikv inspect` reports it before
anything runs, and so that a call can trap with a message naming it.

Spin's packages are `fermyon:spin` (unversioned: Spin 1; `@2.0.0`: Spin 2
and 3) and `spin:<name>` (`@3.x`, `@4.x`: Spin 3.2 and later, and Spin 4's
async ones). The pattern matches them all, including versions that do not
exist yet, so a newer SDK's import is still named as Spin's.
"""

from __future__ import annotations

import re
from collections.abc import Container

#: Every interface of Spin's own packages, matched whole (`fullmatch`):
#: `fermyon:spin/<name>[@<version>]` and `spin:<package>/<name>@<version>`.
SPIN_INTERFACE = re.compile(
    r"fermyon:spin/[a-z][a-z0-9-]*(?:@[0-9][0-9A-Za-z.+-]*)?"
    r"|spin:[a-z][a-z0-9-]*/[a-z][a-z0-9-]*@[0-9][0-9A-Za-z.+-]*"
)

#: What `wasikv inspect` says of such an import.
NOT_PROVIDED = "not provided by wasikv; calls trap"


def not_provided(name: str, provided: Container[str]) -> bool:
    """Whether `name` is an interface of Spin's that is not among the names wasikv `provided`."""
    return name not in provided and SPIN_INTERFACE.fullmatch(name) is not None


def trap_message(interface: str, function: str) -> str:
    """The message of the trap a call of `function` of an unprovided Spin `interface` ends in."""
    return (
        f"{interface} is not provided by wasikv ({function} was called): wasikv serves Spin's "
        "key-value and variables interfaces only"
    )


__all__ = ["NOT_PROVIDED", "SPIN_INTERFACE", "not_provided", "trap_message"]
