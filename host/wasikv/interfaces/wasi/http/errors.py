"""The values of `wasi:http/types` that are plain data: error codes, header errors, methods, schemes.

Everything here follows what wasmtime-wasi-http (wasmtime 50) accepts and
returns, since guests are written against it: the same standard methods and
schemes, the same syntax checks (the `http` crate's, which it uses), the same
`error-code` case names and payloads. Variants are `Case` values, records
dicts keyed by their WIT field names.
"""

from __future__ import annotations

from typing import Any

from ....runtime.codec import Case

__all__ = [
    "ERROR_CODES",
    "FORBIDDEN",
    "IMMUTABLE",
    "INVALID_SYNTAX",
    "authority_ok",
    "body_size_error",
    "describe_error_code",
    "error_code",
    "internal_error",
    "is_error_code",
    "is_token",
    "method_case",
    "method_name",
    "path_with_query_ok",
    "scheme_case",
    "scheme_name",
]

#: The three `header-error` cases.
INVALID_SYNTAX = Case("invalid-syntax")
FORBIDDEN = Case("forbidden")
IMMUTABLE = Case("immutable")

# What each `error-code` case carries: None (nothing), "u64?"/"u32?"/"str?"
# (an option), or a record's field names (a dict), optional when "?" ends it.
_DNS = ("rcode", "info-code")
_TLS = ("alert-id", "alert-message")
_FIELD_SIZE = ("field-name", "field-size")
#: Every `error-code` case name and the shape of its payload.
ERROR_CODES: dict[str, Any] = {
    "DNS-timeout": None,
    "DNS-error": _DNS,
    "destination-not-found": None,
    "destination-unavailable": None,
    "destination-IP-prohibited": None,
    "destination-IP-unroutable": None,
    "connection-refused": None,
    "connection-terminated": None,
    "connection-timeout": None,
    "connection-read-timeout": None,
    "connection-write-timeout": None,
    "connection-limit-reached": None,
    "TLS-protocol-error": None,
    "TLS-certificate-error": None,
    "TLS-alert-received": _TLS,
    "HTTP-request-denied": None,
    "HTTP-request-length-required": None,
    "HTTP-request-body-size": "u64?",
    "HTTP-request-method-invalid": None,
    "HTTP-request-URI-invalid": None,
    "HTTP-request-URI-too-long": None,
    "HTTP-request-header-section-size": "u32?",
    "HTTP-request-header-size": (*_FIELD_SIZE, "?"),
    "HTTP-request-trailer-section-size": "u32?",
    "HTTP-request-trailer-size": _FIELD_SIZE,
    "HTTP-response-incomplete": None,
    "HTTP-response-header-section-size": "u32?",
    "HTTP-response-header-size": _FIELD_SIZE,
    "HTTP-response-body-size": "u64?",
    "HTTP-response-trailer-section-size": "u32?",
    "HTTP-response-trailer-size": _FIELD_SIZE,
    "HTTP-response-transfer-coding": "str?",
    "HTTP-response-content-coding": "str?",
    "HTTP-response-timeout": None,
    "HTTP-upgrade-failed": None,
    "HTTP-protocol-error": None,
    "loop-detected": None,
    "configuration-error": None,
    "internal-error": "str?",
}

_RECORD_FIELDS = {_DNS: (str, int), _TLS: (int, str), _FIELD_SIZE: (str, int)}
_INT_BITS = {"u64?": 64, "u32?": 32}


def _payload_ok(shape: Any, payload: Any) -> bool:
    if shape is None:
        return payload is None
    if shape == "str?":
        return payload is None or isinstance(payload, str)
    if isinstance(shape, str):
        return payload is None or (type(payload) is int and 0 <= payload < 1 << _INT_BITS[shape])
    if shape[-1] == "?":
        return payload is None or _payload_ok(shape[:-1], payload)
    if not isinstance(payload, dict) or set(payload) != set(shape):
        return False
    kinds = _RECORD_FIELDS[shape]
    fields = zip(shape, kinds, strict=True)
    return all(payload[name] is None or isinstance(payload[name], kind) for name, kind in fields)


def is_error_code(value: Any) -> bool:
    """Whether `value` is a well-formed `error-code`: a known case with a payload of its shape."""
    if isinstance(value, str):
        value = Case(value)
    return (
        isinstance(value, Case)
        and value.name in ERROR_CODES
        and _payload_ok(ERROR_CODES[value.name], value.payload)
    )


def error_code(name: str, payload: Any = None) -> Case:
    """An `error-code` value; raises ValueError for an unknown case or a payload of the wrong shape.

    Records are dicts keyed by their WIT field names, e.g.
    `error_code("DNS-error", {"rcode": "NXDOMAIN", "info-code": None})`.
    """
    code = Case(name, payload)
    if not is_error_code(code):
        raise ValueError(f"not a wasi:http error-code: {name}({payload!r})")
    return code


def internal_error(message: str | None = None) -> Case:
    """`internal-error(message)`."""
    return Case("internal-error", message)


def body_size_error(*, request: bool, size: int | None) -> Case:
    """`HTTP-request-body-size(size)` for a request body, `HTTP-response-body-size(size)` for a response's."""
    return Case("HTTP-request-body-size" if request else "HTTP-response-body-size", size)


def describe_error_code(code: Case | str) -> str:
    """A short text for logs and error pages: the case name, with its payload when it has one."""
    if isinstance(code, str):
        return code
    if code.payload is None:
        return code.name
    return f"{code.name}: {code.payload!r}"


# RFC 9110 tchar: the bytes of a token (header names, methods).
_TCHARS = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def is_token(text: str) -> bool:
    """Whether `text` is a non-empty RFC 9110 token."""
    return bool(text) and text.isascii() and _TCHARS.issuperset(text.encode("ascii"))


# The methods with a case of their own; any other is `other(name)`, exact
# case included ("get" is not GET), as the `http` crate parses them.
_METHODS = {
    name.upper(): Case(name)
    for name in ("get", "head", "post", "put", "delete", "connect", "options", "trace", "patch")
}
_METHOD_NAMES = {case.name: name for name, case in _METHODS.items()}


def method_case(method: str) -> Case:
    """The `method` value of an HTTP method name: `get` for "GET", `other("get")` for "get"."""
    return _METHODS.get(method) or Case("other", method)


def method_name(method: Case | str) -> str | None:
    """The HTTP method name of a `method` value; None when `other` holds no valid token."""
    if isinstance(method, str):
        method = Case(method)
    if method.name == "other":
        return method.payload if isinstance(method.payload, str) and is_token(method.payload) else None
    return _METHOD_NAMES.get(method.name)


def scheme_case(scheme: str) -> Case:
    """The `scheme` value of a URI scheme: `HTTP`, `HTTPS` (any letter case) or `other(scheme)`."""
    lowered = scheme.lower()
    if lowered == "http":
        return Case("HTTP")
    if lowered == "https":
        return Case("HTTPS")
    return Case("other", scheme)


_SCHEME_CHARS = frozenset(b"+-.0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_MAX_SCHEME = 64


def scheme_name(scheme: Case | str) -> str | None:
    """The URI scheme of a `scheme` value; None when `other` holds no valid scheme.

    `other` keeps its spelling: as in the `http` crate, `other("http")` is
    http, but `other("HTTP")` is a scheme of its own (which no sender supports).
    """
    if isinstance(scheme, str):
        scheme = Case(scheme)
    if scheme.name == "HTTP":
        return "http"
    if scheme.name == "HTTPS":
        return "https"
    text = scheme.payload
    if scheme.name != "other" or not isinstance(text, str) or len(text) > _MAX_SCHEME:
        return None
    if not text.isascii() or not _SCHEME_CHARS.issuperset(text.encode("ascii")):
        return None
    return text


def _byte_ranges(*spans: tuple[int, int]) -> frozenset[int]:
    return frozenset(b for low, high in spans for b in range(low, high + 1))


# The bytes the `http` crate's PathAndQuery accepts: in the path, and in the
# query (after "?"); a "#" ends either (the fragment is not sent).
_PATH = _byte_ranges((0x21, 0x21), (0x24, 0x3B), (0x3D, 0x3D), (0x40, 0x5F), (0x61, 0x7A), (0x7C, 0x7C))
_PATH = _PATH | _byte_ranges((0x7E, 0xFF)) | frozenset(b'"{}')
_QUERY = _byte_ranges((0x21, 0x21), (0x24, 0x3B), (0x3D, 0x3D), (0x3F, 0xFF))
# A URI's length is bounded by the `http` crate to below 64 KiB.
_MAX_URI = 0xFFFE


def path_with_query_ok(text: str) -> bool:
    """Whether `text` is a path-with-query the `http` crate accepts (what `set-path-with-query` checks)."""
    data = text.encode("utf-8")
    if len(data) > _MAX_URI:
        return False
    data = data.split(b"#", 1)[0]
    path, question, query = data.partition(b"?")
    return _PATH.issuperset(path) and (not question or _QUERY.issuperset(query))


_REG_NAME = frozenset(b"-._~!$&'()*+,;=%0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_IPV6 = frozenset(b"0123456789abcdefABCDEF:.")


def authority_ok(text: str) -> bool:
    """Whether `text` is an authority wasmtime's `set-authority` accepts: `[userinfo@]host[:port]`.

    Non-empty; a port, when there is a ":" after the host, is a number up to
    65535; an IPv6 host is bracketed.
    """
    if not text or not text.isascii() or len(text) > _MAX_URI:
        return False
    data = text.encode("ascii")
    userinfo, at, hostport = data.rpartition(b"@")
    if at and not _REG_NAME.union(b":").issuperset(userinfo):
        return False
    if hostport.startswith(b"["):
        end = hostport.find(b"]")
        if end < 0 or not _IPV6.issuperset(hostport[1:end]) or b":" not in hostport[1:end]:
            return False
        host, rest = hostport[: end + 1], hostport[end + 1 :]
        if rest and not rest.startswith(b":"):
            return False
        port = rest[1:] if rest else None
    else:
        host, colon, port_text = hostport.partition(b":")
        port = port_text if colon else None
        if not _REG_NAME.issuperset(host):
            return False
    if not host and not port:
        return False
    if port is None:
        return True
    return port.isdigit() and int(port) <= 0xFFFF
