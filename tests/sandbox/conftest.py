"""Fixtures of the hostile-guest suite: one misbehaving component for every trigger."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..support import foreign_guest_wasm, guest_wasm

#: The hostile guest exports run, http and the watcher (the SDK's union world).
SDK_WORLD = "wasikv:app/sdk"


@pytest.fixture(scope="session")
def hostile_wasm() -> Path:
    """tests/guests/hostile, built once per run."""
    return guest_wasm("hostile", SDK_WORLD)


@pytest.fixture(scope="session")
def mistyped_wasm() -> Path:
    """A component importing the 0.2.0-draft shapes under wasikv's draft2 interface names."""
    return foreign_guest_wasm("mistyped", "keyvalue-0.2.0-draft", "foreign-command", relabel="0.2.0-draft2")
