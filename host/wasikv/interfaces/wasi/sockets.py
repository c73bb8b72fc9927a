"""`wasi:sockets` tcp, udp, their create-socket and ip-name-lookup 0.2: wasikv gives guests no network.

As wasmtime answers when TCP, UDP and name lookups are not allowed (its
default): creating a socket fails with `access-denied`, `resolve-addresses`
with `permanent-resolver-failure`. So a guest never holds a socket or a
resolve stream, and their methods are linked as traps (`Unavailable`).
`network` (from `instance-network`) stays wasmtime's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...runtime.codec import Err
from .io import HostResource
from .state import Unavailable, WasiInstance

__all__ = [
    "BODIES",
    "NO_NETWORK",
    "RESOURCES",
    "IncomingDatagramStream",
    "OutgoingDatagramStream",
    "ResolveAddressStream",
    "TcpSocket",
    "UdpSocket",
]

#: Why a socket function cannot be called.
NO_NETWORK = Unavailable("wasikv gives guests no network")

_TCP = "wasi:sockets/tcp"
_UDP = "wasi:sockets/udp"
_LOOKUP = "wasi:sockets/ip-name-lookup"

_TCP_METHODS = (
    "start-bind",
    "finish-bind",
    "start-connect",
    "finish-connect",
    "start-listen",
    "finish-listen",
    "accept",
    "local-address",
    "remote-address",
    "is-listening",
    "address-family",
    "set-listen-backlog-size",
    "keep-alive-enabled",
    "set-keep-alive-enabled",
    "keep-alive-idle-time",
    "set-keep-alive-idle-time",
    "keep-alive-interval",
    "set-keep-alive-interval",
    "keep-alive-count",
    "set-keep-alive-count",
    "hop-limit",
    "set-hop-limit",
    "receive-buffer-size",
    "set-receive-buffer-size",
    "send-buffer-size",
    "set-send-buffer-size",
    "subscribe",
    "shutdown",
)
_UDP_METHODS = (
    "udp-socket.start-bind",
    "udp-socket.finish-bind",
    "udp-socket.local-address",
    "udp-socket.remote-address",
    "udp-socket.address-family",
    "udp-socket.unicast-hop-limit",
    "udp-socket.set-unicast-hop-limit",
    "udp-socket.receive-buffer-size",
    "udp-socket.set-receive-buffer-size",
    "udp-socket.send-buffer-size",
    "udp-socket.set-send-buffer-size",
    "udp-socket.subscribe",
    "incoming-datagram-stream.receive",
    "incoming-datagram-stream.subscribe",
    "outgoing-datagram-stream.check-send",
    "outgoing-datagram-stream.send",
    "outgoing-datagram-stream.subscribe",
)


class TcpSocket(HostResource):
    """`tcp-socket`: never made."""

    resource_name = "tcp-socket"


class UdpSocket(HostResource):
    """`udp-socket`: never made."""

    resource_name = "udp-socket"


class IncomingDatagramStream(HostResource):
    """`incoming-datagram-stream`: never made."""

    resource_name = "incoming-datagram-stream"


class OutgoingDatagramStream(HostResource):
    """`outgoing-datagram-stream`: never made."""

    resource_name = "outgoing-datagram-stream"


class ResolveAddressStream(HostResource):
    """`resolve-address-stream`: never made."""

    resource_name = "resolve-address-stream"


def create_socket(_instance: WasiInstance, _family: str) -> Err:
    """`create-tcp-socket` and `create-udp-socket`: `access-denied`, as wasmtime without network."""
    return Err("access-denied")


def resolve_addresses(_instance: WasiInstance, _network: object, _name: str) -> Err:
    """`resolve-addresses`: `permanent-resolver-failure`, as wasmtime without name lookups."""
    return Err("permanent-resolver-failure")


#: The body of every function of these `wasi:sockets` interfaces.
BODIES: dict[tuple[str, str], Callable[..., Any] | Unavailable] = {
    ("wasi:sockets/tcp-create-socket", "create-tcp-socket"): create_socket,
    ("wasi:sockets/udp-create-socket", "create-udp-socket"): create_socket,
    (_LOOKUP, "resolve-addresses"): resolve_addresses,
    (_LOOKUP, "[method]resolve-address-stream.resolve-next-address"): NO_NETWORK,
    (_LOOKUP, "[method]resolve-address-stream.subscribe"): NO_NETWORK,
    **{(_TCP, f"[method]tcp-socket.{name}"): NO_NETWORK for name in _TCP_METHODS},
    **{(_UDP, f"[method]{name}"): NO_NETWORK for name in _UDP_METHODS},
}

#: The class of each of their resources.
RESOURCES: dict[tuple[str, str], type] = {
    (_TCP, "tcp-socket"): TcpSocket,
    (_UDP, "udp-socket"): UdpSocket,
    (_UDP, "incoming-datagram-stream"): IncomingDatagramStream,
    (_UDP, "outgoing-datagram-stream"): OutgoingDatagramStream,
    (_LOOKUP, "resolve-address-stream"): ResolveAddressStream,
}
