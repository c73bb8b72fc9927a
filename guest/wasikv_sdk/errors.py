"""Errors of the key-value API, shared by guests and host-side Python code.

Pure Python: importing this module does not need the guest runtime.
"""

from __future__ import annotations


class KeyValueError(Exception):
    """Base class of every key-value error."""


class NoSuchStore(KeyValueError):
    """No store is defined under the requested label."""


class AccessDenied(KeyValueError):
    """The store exists but this component was not granted access to it."""


class StoreError(KeyValueError):
    """The store failed or refused the operation (wasi:keyvalue `error::other`)."""


class CasConflict(KeyValueError):
    """A compare-and-swap lost: the key changed after it was read."""


class VariableError(Exception):
    """Reading an application variable failed (wasi:config `upstream` or `io` error)."""


class NoSuchVariable(VariableError):
    """The component has no variable of that name (its manifest's `[component.NAME.variables]`)."""
