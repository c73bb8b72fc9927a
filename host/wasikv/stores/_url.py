"""Store URLs, parsed and shown the same way for every backend.

`redact` is the one function that turns a URL into text for a message, a log
line or a `repr`: every store's `url` attribute is its redacted form.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from ..errors import InvalidStoreUrl

# Query parameters whose values are hidden in messages (`?password=`, `?sslpassword=`,
# `?auth_token=`...): no backend accepts them, but a URL that has one is still echoed.
_SECRET_PARAMETER = re.compile(r"pass|pwd|secret|token|auth|credential|api.?key", re.IGNORECASE)


def parse_query(url: str, query: str, known: Sequence[str]) -> dict[str, str]:
    """`name=value` pairs of `query`; unknown, empty, repeated or badly encoded ones are refused.

    Messages show `url` redacted (`redact`).
    """
    url = redact(url)
    options: dict[str, str] = {}
    if not query:
        return options
    for part in query.split("&"):
        name, equals, value = part.partition("=")
        try:
            name, value = unquote(name, errors="strict"), unquote(value, errors="strict")
        except UnicodeDecodeError:
            raise InvalidStoreUrl(f"store URL {url!r}: invalid percent-encoding") from None
        if name not in known:
            raise InvalidStoreUrl(
                f"store URL {url!r}: unknown parameter {name!r} (known: {', '.join(known)})"
            )
        if not equals or not value:
            raise InvalidStoreUrl(f"store URL {url!r}: parameter {name!r} needs a value")
        if name in options:
            raise InvalidStoreUrl(f"store URL {url!r}: parameter {name!r} is given twice")
        options[name] = value
    return options


def _authority(url: str) -> tuple[str, str | None, str, str] | None:
    """(scheme, userinfo or None, host:port, the rest) of `url`; None without `://`."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return None
    end = len(rest)
    for stop in "/?#":
        found = rest.find(stop)
        if found != -1:
            end = min(end, found)
    # rpartition: a password may itself contain '@' (when not percent-encoded).
    userinfo, at, hostport = rest[:end].rpartition("@")
    return scheme, userinfo if at else None, hostport, rest[end:]


def without_credentials(url: str) -> str:
    """`url` without its user and password (`redis://:pw@host/0` -> `redis://host/0`), for messages.

    Secret-looking query parameters keep their names, with `***` for values.
    """
    parts = _authority(url)
    if parts is None or parts[1] is None:
        return _hide_query_secrets(url)
    scheme, _, hostport, tail = parts
    return f"{scheme}://{hostport}{_hide_query_secrets(tail)}"


def password_of(url: str) -> str | None:
    """The password in `url`'s authority, if it has one (to hide it in messages)."""
    parts = _authority(url)
    userinfo = None if parts is None else parts[1]
    if userinfo is None:
        return None
    return userinfo.partition(":")[2] or None


def redact(url: str) -> str:
    """`url` for messages: the password (if any) and the values of secret-looking query
    parameters (`?password=`) replaced by ``***``, keeping the user."""
    parts = _authority(url)
    if parts is None:
        return _hide_query_secrets(url)
    scheme, userinfo, hostport, tail = parts
    tail = _hide_query_secrets(tail)
    if userinfo is None:
        return f"{scheme}://{hostport}{tail}"
    if ":" not in userinfo:
        return f"{scheme}://{userinfo}@{hostport}{tail}"
    return f"{scheme}://{userinfo.partition(':')[0]}:***@{hostport}{tail}"


def _hide_query_secrets(text: str) -> str:
    """`text` (a URL or its tail) with the values of secret-looking query parameters as ``***``."""
    head, question, rest = text.partition("?")
    if not question:
        return text
    query, hash_, fragment = rest.partition("#")
    parts = []
    for part in query.split("&"):
        name, equals, value = part.partition("=")
        if equals and value and _SECRET_PARAMETER.search(unquote(name)):
            part = f"{name}=***"
        parts.append(part)
    return f"{head}?{'&'.join(parts)}{hash_}{fragment}"


def seconds_option(url: str, options: dict[str, str], name: str, default: float) -> float:
    """The query parameter `name` in seconds (0 < s <= 86400), `default` when absent."""
    text = options.get(name)
    if text is None:
        return default
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and 0 < seconds <= 86_400) or not text.isascii():
        raise InvalidStoreUrl(
            f"store URL {redact(url)!r}: {name} must be a positive number of seconds (at most 86400), "
            f"not {text!r}"
        )
    return seconds


def count_option(
    url: str, options: dict[str, str], name: str, default: int, *, minimum: int, maximum: int
) -> int:
    """The query parameter `name` as a whole number in [minimum, maximum], `default` when absent."""
    text = options.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit() and minimum <= int(text) <= maximum):
        raise InvalidStoreUrl(
            f"store URL {redact(url)!r}: {name} must be a whole number from {minimum} to {maximum}, "
            f"not {text!r}"
        )
    return int(text)


class ServerUrl(NamedTuple):
    """The parts of a ``scheme://[user[:password]@]host[:port]/path?query`` URL, percent-decoded."""

    scheme: str
    username: str | None
    password: str | None
    host: str
    port: int | None
    path: str
    netloc: str
    query: str


def split_server_url(
    url: str, kind: str, schemes: Sequence[str], default_host: str, accepted: str
) -> ServerUrl:
    """`url` split for a server backend (`kind`: ``redis``); `InvalidStoreUrl` names what is wrong.

    Messages show `url` redacted, and a parse error that quotes the password has it replaced.
    """
    shown = redact(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        problem = str(exc)
        if password := password_of(url):
            problem = problem.replace(password, "***")
        raise InvalidStoreUrl(f"store URL {shown!r}: {problem}; {accepted}") from None
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        raise InvalidStoreUrl(f"store URL {shown!r} is not a {kind} URL; {accepted}")
    if not url[len(scheme) + 1 :].startswith("//"):
        raise InvalidStoreUrl(f"store URL {shown!r}: a {kind} URL starts with '{scheme}://'; {accepted}")
    if parts.fragment:
        raise InvalidStoreUrl(f"store URL {shown!r}: a {kind} URL has no '#' part")
    try:
        username = unquote(parts.username, errors="strict") if parts.username else None
        password = unquote(parts.password, errors="strict") if parts.password is not None else None
        host = unquote(parts.hostname, errors="strict") if parts.hostname else default_host
    except UnicodeDecodeError:
        raise InvalidStoreUrl(f"store URL {shown!r}: invalid percent-encoding") from None
    return ServerUrl(scheme, username, password, host, port, parts.path, parts.netloc, parts.query)
