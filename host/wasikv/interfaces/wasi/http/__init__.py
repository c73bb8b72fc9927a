"""`wasi:http/types` and `outgoing-handler` 0.2 as Python host resources, as wasmtime-wasi-http behaves.

- `fields`: headers and trailers (validation, forbidden names, immutability);
- `bodies`: incoming and outgoing bodies, trailers, and the host ends of both
  (`IncomingBodySource` the host fills, `OutgoingBodySink` it drains);
- `messages`: what serving a request takes (`IncomingRequest`,
  `ResponseOutparam` and the `ResponseHead` it hands over, `OutgoingResponse`);
- `outbound`: requests a guest sends, through the instance's `OutboundSender`;
- `sender`: `ClientSender`, the `OutboundSender` over wasikv's `HttpClient`;
- `errors`: `error-code`, `header-error`, methods and schemes as values.

`BODIES` and `RESOURCES` cover every function and resource of both
interfaces (`[constructor]`, `[method]`, `[static]` and free functions).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import bodies, fields, messages, outbound
from .bodies import FutureTrailers, IncomingBody, IncomingBodySource, OutgoingBody, OutgoingBodySink
from .errors import describe_error_code, error_code
from .fields import Fields
from .messages import IncomingRequest, OutgoingResponse, ResponseHead, ResponseOutparam
from .outbound import (
    FutureIncomingResponse,
    IncomingResponse,
    OutboundRequest,
    OutboundSender,
    OutgoingRequest,
    PendingResponse,
    RequestOptions,
    Timeouts,
)

__all__ = [
    "BODIES",
    "RESOURCES",
    "Fields",
    "FutureIncomingResponse",
    "FutureTrailers",
    "IncomingBody",
    "IncomingBodySource",
    "IncomingRequest",
    "IncomingResponse",
    "OutboundRequest",
    "OutboundSender",
    "OutgoingBody",
    "OutgoingBodySink",
    "OutgoingRequest",
    "OutgoingResponse",
    "PendingResponse",
    "RequestOptions",
    "ResponseHead",
    "ResponseOutparam",
    "Timeouts",
    "describe_error_code",
    "error_code",
]

#: The body of every function of `wasi:http/types` and `wasi:http/outgoing-handler`.
BODIES: dict[tuple[str, str], Callable[..., Any]] = {
    **fields.BODIES,
    **bodies.BODIES,
    **messages.BODIES,
    **outbound.BODIES,
}

_TYPES = "wasi:http/types"
#: The class of each `wasi:http/types` resource.
RESOURCES: dict[tuple[str, str], type] = {
    (_TYPES, "fields"): Fields,
    (_TYPES, "incoming-request"): IncomingRequest,
    (_TYPES, "outgoing-request"): OutgoingRequest,
    (_TYPES, "request-options"): RequestOptions,
    (_TYPES, "response-outparam"): ResponseOutparam,
    (_TYPES, "incoming-response"): IncomingResponse,
    (_TYPES, "incoming-body"): IncomingBody,
    (_TYPES, "future-trailers"): FutureTrailers,
    (_TYPES, "outgoing-response"): OutgoingResponse,
    (_TYPES, "outgoing-body"): OutgoingBody,
    (_TYPES, "future-incoming-response"): FutureIncomingResponse,
}
