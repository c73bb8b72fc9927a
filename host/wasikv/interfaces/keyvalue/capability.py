"""wasi:keyvalue as a capability: every shape's interfaces, and each instance's handle table."""

from __future__ import annotations

from collections.abc import Callable, Collection

from ...capability import Capability, InstanceSpec
from ...errors import ConfigError
from ...limits import Limits
from ...runtime.host_functions import HostInterface
from ...stores.base import Store
from .cursor import NumberedCursors
from .session import KeyValueSession

#: Finds the store of a label for an instance granted the labels given (None: all).
GrantedResolver = Callable[[str, frozenset[str] | None], Store]


class KeyValue(Capability):
    """The stores of a host, by label, through every wasi:keyvalue shape wasikv serves.

    Each instance gets a `KeyValueSession` (its open buckets and cas
    handles) that may open only the labels of `InstanceSpec.grants`.
    """

    name = "key-value"

    def __init__(
        self,
        interfaces: tuple[HostInterface, ...],
        resolve: GrantedResolver,
        labels: Callable[[], Collection[str]],
        limits: Limits,
    ) -> None:
        super().__init__()
        self.interfaces = interfaces
        self._resolve = resolve
        self._labels = labels
        self._limits = limits
        self._cursors = NumberedCursors()

    def make_state(self, spec: InstanceSpec) -> KeyValueSession:
        granted = spec.grants
        defined = self._labels()
        undefined = sorted((granted or frozenset()) - set(defined))
        if undefined:
            raise ConfigError(
                f"granted store label(s) {', '.join(map(repr, undefined))} not defined; "
                f"defined: {', '.join(map(repr, sorted(defined))) or 'none'}"
            )
        resolve = self._resolve
        return KeyValueSession(lambda label: resolve(label, granted), self._limits, self._cursors)

    def release(self, state: KeyValueSession) -> None:
        state.close()


__all__ = ["GrantedResolver", "KeyValue"]
