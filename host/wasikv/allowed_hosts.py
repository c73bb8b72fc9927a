"""Spin's `allowed_outbound_hosts`: the schemes, hosts and ports a component may reach.

```toml
allowed_outbound_hosts = [
    "https://api.example.com",        # https, that host, port 443 (the scheme's default)
    "http://localhost:3000",          # one port
    "*://example.com:*",              # any scheme, any port
    "https://*.example.com",          # any subdomain (not example.com itself)
    "http://127.0.0.1:8000..9000",    # a port range, end excluded (8000-8999)
    "https://10.0.0.0/8",             # an IP network
    "http://[::1]:8080",              # an IPv6 address
    "http://self",                    # the app itself (relative URLs; `self.alt`)
    "https://{{ api_host }}",         # application variables, resolved by `expand`
]
```

The syntax and the matching are Spin's (`spin-outbound-networking-config`,
`AllowedHostConfig::parse` and `allows`), down to its quirks: an entry is
`<scheme>://<host>[:<port>]` with at most a trailing `/`; a scheme is `*` or
letters, compared as written (requests' schemes are lower-case); without a
port, only the scheme's well-known port is allowed (http, https, postgres,
mysql, redis, mqtt; `*://host` without a port is an error); a port range
`a..b` excludes `b`; `*` as the host allows every host, `*.domain` every
subdomain of `domain`; an `addr/prefix` host is an IP network; hosts are
compared after WHATWG URL host parsing (lower-cased, IDNA, IPv4 numbers such
as `0x7f.1` read as `127.0.0.1`), as Spin's `url::Host` does.

What wasikv does differently: `*.spin.internal` hosts (Spin's local service
chaining, which never leaves Spin's process) are never allowed, not even by
`*://*:*`: wasikv has no service chaining, and such a request must not go
to the network. IDNA of non-ASCII names uses Python's IDNA 2003 codec where
Spin uses UTS #46 (they differ on a few characters such as `ß`).
"""

from __future__ import annotations

import ipaddress
import json
import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote_to_bytes

from .errors import ConfigError

__all__ = [
    "SERVICE_CHAINING_SUFFIX",
    "AllowedHost",
    "AllowedHosts",
    "Host",
    "HostRule",
    "default_port",
    "parse_host",
    "split_authority",
]

#: A parsed host: a domain (ASCII, lower-case) or an IP address.
Host = str | ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Hosts under this domain are Spin's local service chaining; wasikv never allows them.
SERVICE_CHAINING_SUFFIX = ".spin.internal"

# Spin's `well_known_port`.
_DEFAULT_PORTS = {"postgres": 5432, "mysql": 3306, "redis": 6379, "mqtt": 1883, "http": 80, "https": 443}
# The WHATWG URL standard's forbidden domain code points (forbidden host code points,
# C0 controls, '%' and DEL): a host containing one is invalid.
_FORBIDDEN_DOMAIN = frozenset("\x00\t\n\r #/:<>?@[\\]^|%\x7f") | frozenset(map(chr, range(0x20)))
# Rust's `u16`/`u8` `from_str`: an optional '+' and ASCII digits.
_RUST_UINT = re.compile(r"\+?[0-9]+\Z")
_FORMAT = "write <scheme>://<host>[:<port>], with '*' allowed for each ('*://*:*' allows every host)"


def default_port(scheme: str) -> int | None:
    """The port a URL of `scheme` means when it names none (Spin's list), or None."""
    return _DEFAULT_PORTS.get(scheme)


# ----------------------------------------------------------------- hosts


def parse_host(text: str) -> Host:
    """`text` as a URL host, as the WHATWG URL standard (and Rust's `url::Host::parse`) reads it.

    `[...]` is an IPv6 address; otherwise the text is percent-decoded,
    lower-cased (IDNA for non-ASCII names), and read as an IPv4 address when
    its last label is a number (`10.1`, `0x7f.0.0.1`). `ValueError` when it
    is no valid host.
    """
    if text.startswith("["):
        if not text.endswith("]"):
            raise ValueError(f"{text!r} has no closing ']'")
        return _ipv6(text[1:-1])
    domain = unquote_to_bytes(text).decode("utf-8", errors="replace")
    if domain.isascii():
        ascii_domain = domain.lower()
        for label in ascii_domain.split("."):
            if label.startswith("xn--"):
                _punycode(label)
    else:
        try:
            ascii_domain = domain.encode("idna").decode("ascii").lower()
        except UnicodeError as exc:
            raise ValueError(f"{text!r} is not a valid international domain name ({exc})") from None
    if not ascii_domain:
        raise ValueError("the host is empty")
    bad = next((c for c in ascii_domain if c in _FORBIDDEN_DOMAIN), None)
    if bad is not None:
        raise ValueError(f"{text!r} contains {bad!r}, which no host may contain")
    if _ends_in_number(ascii_domain):
        return _ipv4(ascii_domain)
    return ascii_domain


def split_authority(authority: str) -> tuple[str, int | None]:
    """A URL authority's host (IPv6 in brackets) and port (None when it names none); user info is dropped.

    `ValueError` for a port that is no number up to 65535 or an IPv6
    address without its closing bracket.
    """
    hostport = authority.rpartition("@")[2]
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ValueError(f"{authority!r}: an IPv6 address without its closing ']'")
        host, rest = hostport[: end + 1], hostport[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"{authority!r}: text after the IPv6 address")
        port_text = rest[1:]
    else:
        host, _, port_text = hostport.partition(":")
    if not port_text:
        return host, None
    if not port_text.isascii() or not port_text.isdigit() or int(port_text) > 0xFFFF:
        raise ValueError(f"{authority!r}: the port {port_text!r} is not a number from 0 to 65535")
    return host, int(port_text)


def _ipv6(text: str) -> ipaddress.IPv6Address:
    # Python accepts a zone ("fe80::1%eth0"); URLs do not.
    if "%" in text:
        raise ValueError(f"[{text}] is not an IPv6 address")
    try:
        return ipaddress.IPv6Address(text)
    except ValueError:
        raise ValueError(f"[{text}] is not an IPv6 address") from None


def _punycode(label: str) -> None:
    # The IDNA codec decodes the punycode and checks that it encodes back to the same label.
    try:
        label.encode("ascii").decode("idna")
    except UnicodeError:
        raise ValueError(f"{label!r} is not valid punycode (an 'xn--' label)") from None


def _ipv4_number(part: str) -> int | None:
    """One part of a WHATWG IPv4 address: decimal, `0x` hex or `0` octal; None if it is none."""
    radix = 10
    if part[:2] in ("0x", "0X"):
        part, radix = part[2:], 16
    elif len(part) > 1 and part.startswith("0"):
        part, radix = part[1:], 8
    if not part:
        return 0
    digits = string.hexdigits if radix == 16 else string.digits[:radix]
    if any(c not in digits for c in part):
        return None
    return int(part, radix)


def _ends_in_number(domain: str) -> bool:
    labels = domain.split(".")
    if labels[-1] == "" and len(labels) > 1:
        labels.pop()
    last = labels[-1]
    if last and last.isdigit():
        return True
    return bool(last) and _ipv4_number(last) is not None


def _ipv4(domain: str) -> ipaddress.IPv4Address:
    parts = domain.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    numbers = [_ipv4_number(part) if part else None for part in parts]
    if len(parts) > 4 or any(n is None for n in numbers):
        raise ValueError(f"{domain!r} is not an IPv4 address")
    values = [n for n in numbers if n is not None]
    if any(n > 255 for n in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        raise ValueError(f"{domain!r} is not an IPv4 address (a part is out of range)")
    address = values[-1] + sum(n * 256 ** (3 - i) for i, n in enumerate(values[:-1]))
    return ipaddress.IPv4Address(address)


def _network(text: str) -> Network | None:
    """`addr/prefix` as an IP network, host bits dropped (`ip_network`'s `from_str_truncate`); else None."""
    address, slash, prefix = text.partition("/")
    if not slash or not _RUST_UINT.match(prefix) or "%" in address:
        return None
    try:
        return ipaddress.ip_network(f"{address}/{int(prefix)}", strict=False)
    except ValueError:
        return None


# ------------------------------------------------------------ one entry


@dataclass(frozen=True)
class HostRule:
    """The host part of an entry: `any` (`*`), `self` (`self`, `self.alt`), `subdomain` of
    `value` (a `.domain` suffix), a `literal` host or a `network`."""

    kind: Literal["any", "self", "subdomain", "literal", "network"]
    value: Host | Network | None = None

    def allows(self, host: Host) -> bool:
        """Whether a request to `host` matches (never for `self`: see `AllowedHosts.allows_self`)."""
        if self.kind == "any":
            return True
        value = self.value
        if self.kind == "subdomain":
            return isinstance(host, str) and isinstance(value, str) and host.endswith(value)
        if self.kind == "literal":
            return host == value
        if isinstance(value, ipaddress.IPv4Network):
            return isinstance(host, ipaddress.IPv4Address) and host in value
        if isinstance(value, ipaddress.IPv6Network):
            return isinstance(host, ipaddress.IPv6Address) and host in value
        return False

    def __str__(self) -> str:
        if self.kind == "any":
            return "*"
        if self.kind == "self":
            return "self"
        if self.kind == "subdomain":
            return f"*{self.value}"
        if isinstance(self.value, ipaddress.IPv6Address):
            return f"[{self.value}]"
        return str(self.value)


def _host_rule(text: str) -> HostRule:
    """Spin's `HostConfig::parse`; `ValueError` says why `text` is no host."""
    text = text.strip()
    if text == "*":
        return HostRule("any")
    if text in ("self", "self.alt"):
        return HostRule("self")
    if text.startswith("{"):
        raise ValueError("host lists ({...}) are not supported; write one entry per host")
    network = _network(text)
    if network is not None:
        return HostRule("network", network)
    text = text.removesuffix("/")
    if "/" in text:
        raise ValueError("an entry must not include a path")
    if text.startswith("*."):
        domain = text[2:]
        if "*" in domain:
            raise ValueError("'*' is allowed only as the first label ('*.example.com')")
        suffix = parse_host(domain)
        if not isinstance(suffix, str):
            raise ValueError(f"'*.' must be followed by a domain, not the address {domain!r}")
        return HostRule("subdomain", f".{suffix}")
    if "*" in text:
        raise ValueError("'*' is allowed only as the whole host or as the first label ('*.example.com')")
    return HostRule("literal", parse_host(text))


def _ports(text: str, scheme: str) -> tuple[range, ...] | None:
    """Spin's `PortConfig::parse`: the allowed ports (None: any); `ValueError` says why not."""
    if not text:
        port = default_port(scheme)
        if port is None:
            raise ValueError(
                f"it names no port and the scheme {scheme!r} has no known default port; "
                "add one (':443', ':*')"
            )
        return (range(port, port + 1),)
    if text == "*":
        return None
    if text.startswith("{"):
        raise ValueError(
            "port lists ({...}) are not supported; write a range ('8000..9000') or one entry per port"
        )
    if ".." in text:
        start, _, end = text.partition("..")
        if not (_u16(start) is not None and _u16(end) is not None):
            raise ValueError(f"the port range {text!r} must be two numbers up to 65535 ('8000..9000')")
        return (range(int(start), int(end)),)
    port = _u16(text)
    if port is None:
        raise ValueError(f"the port {text!r} is not a number from 0 to 65535")
    return (range(port, port + 1),)


def _u16(text: str) -> int | None:
    if not _RUST_UINT.match(text) or int(text) > 0xFFFF:
        return None
    return int(text)


@dataclass(frozen=True)
class AllowedHost:
    """One `allowed_outbound_hosts` entry: `scheme` (None: any), `host`, `ports` (None: any)."""

    original: str
    scheme: str | None
    host: HostRule
    ports: tuple[range, ...] | None

    @classmethod
    def parse(cls, entry: str) -> AllowedHost:
        """Spin's `AllowedHostConfig::parse`; a `ConfigError` names the entry and what is wrong."""
        try:
            return cls._parse(entry)
        except ValueError as exc:
            raise ConfigError(f"allowed_outbound_hosts entry {json.dumps(entry)}: {exc}") from None

    @classmethod
    def _parse(cls, original: str) -> AllowedHost:
        text = original.strip()
        scheme, sep, rest = text.partition("://")
        if not sep:
            if text in ("*", ":", "", "?"):
                raise ValueError(f"this is not an allowed host; {_FORMAT}")
            raise ValueError(f"it has no scheme ('https://', or '*://' for any); {_FORMAT}")
        host, port = rest, ""
        if ":" in rest:
            before, _, tail = rest.rpartition(":")
            if not tail:
                host = before
            elif not _is_host(rest):
                port, slash, path = tail.partition("/")
                if slash and path:
                    raise ValueError("an entry must not include a path")
                host = before
        # Spin checks the port, then the scheme, then the host.
        ports = _ports(port, scheme)
        if scheme == "*":
            scheme_rule = None
        elif scheme.startswith("{"):
            raise ValueError("scheme lists ({...}) are not supported; write one entry per scheme")
        elif not all(c.isalpha() for c in scheme):
            raise ValueError(f"the scheme {scheme!r} may contain only letters ('https', or '*' for any)")
        else:
            scheme_rule = scheme
        return cls(original, scheme_rule, _host_rule(host), ports)

    def allows(self, scheme: str, host: Host, port: int | None) -> bool:
        """Whether a request to `scheme://host:port` matches (`port` None: the scheme's default)."""
        if self.scheme is not None and self.scheme != scheme:
            return False
        if not self.host.allows(host):
            return False
        if self.ports is None:
            return True
        if port is None:
            port = default_port(scheme)
        return port is not None and any(port in ports for ports in self.ports)

    @property
    def allows_everything(self) -> bool:
        """`*://*:*`: every scheme, host and port."""
        return self.scheme is None and self.host.kind == "any" and self.ports is None

    def __str__(self) -> str:
        if self.ports is None:
            port = "*"
        else:
            port = ",".join(str(r.start) if len(r) == 1 else f"{r.start}..{r.stop}" for r in self.ports)
        return f"{self.scheme or '*'}://{self.host}:{port}"


def _service_chaining(host: Host | Network | None) -> bool:
    return isinstance(host, str) and (host.rstrip(".") + ".").endswith(SERVICE_CHAINING_SUFFIX + ".")


def _is_host(text: str) -> bool:
    try:
        _host_rule(text)
    except ValueError:
        return False
    return True


# ------------------------------------------------------------ the list


@dataclass(frozen=True)
class AllowedHosts:
    """A component's `allowed_outbound_hosts`, parsed; `AllowedHosts(())` allows nothing."""

    entries: tuple[AllowedHost, ...] = ()

    @classmethod
    def parse(cls, entries: Sequence[str], *, expand: Callable[[str], str] | None = None) -> AllowedHosts:
        """Parse the entries as Spin does; a `ConfigError` names the first invalid one.

        An entry with `{{ variable }}` templates is expanded with `expand`
        first (a `ConfigError` without it); as in Spin, one that expands to
        nothing (`""`, `"http://"`, `"https://"`) is dropped, so a variable
        can leave an optional endpoint out.
        """
        if list(entries) == ["insecure:allow-all"]:
            raise ConfigError(
                'allowed_outbound_hosts entry "insecure:allow-all" is not accepted (nor by Spin); '
                "write '*://*:*' to allow every host"
            )
        parsed: list[AllowedHost] = []
        for entry in entries:
            if "{{" not in entry:
                parsed.append(AllowedHost.parse(entry))
                continue
            if expand is None:
                raise ConfigError(
                    f"allowed_outbound_hosts entry {json.dumps(entry)} uses variables, "
                    "which must be resolved before its hosts are known"
                )
            resolved = expand(entry)
            if resolved in ("", "http://", "https://"):
                continue
            try:
                parsed.append(AllowedHost._parse(resolved))
            except ValueError as exc:
                raise ConfigError(
                    f"allowed_outbound_hosts entry {json.dumps(entry)} is {json.dumps(resolved)} "
                    f"with its variables' values: {exc}"
                ) from None
        return cls(tuple(parsed))

    @property
    def allow_all(self) -> bool:
        """Whether every scheme, host and port is allowed (a `*://*:*` entry)."""
        return any(entry.allows_everything for entry in self.entries)

    def allows(self, scheme: str, host: str | Host, port: int | None = None) -> bool:
        """Whether a request to `scheme://host:port` is allowed (`port` None: the scheme's default).

        `host` is a URL host (a name, an IPv4 address, `[IPv6]`) or an
        already parsed `Host`; an invalid one is never allowed, nor is a
        Spin service-chaining host (`*.spin.internal`).
        """
        if isinstance(host, str):
            try:
                host = parse_host(host)
            except ValueError:
                return False
        if _service_chaining(host):
            return False
        scheme = scheme.lower()
        return any(entry.allows(scheme, host, port) for entry in self.entries)

    def allows_self(self, schemes: Sequence[str] = ("http", "https")) -> bool:
        """Whether requests to the app itself (a relative URL, or the host `self.alt`) are allowed.

        Spin allows them with a `self` (or `self.alt`) entry of one of
        `schemes`, or a `*` host; the port does not matter.
        """
        return any(
            entry.host.kind in ("any", "self") and (entry.scheme is None or entry.scheme in schemes)
            for entry in self.entries
        )

    def describe(self) -> str:
        """What is allowed, in one line (for `wasikv inspect` and messages)."""
        if not self.entries:
            return "no outbound requests"
        if self.allow_all:
            return "every scheme, host and port (*://*:*), except Spin service chaining (*.spin.internal)"
        parts = []
        for entry in self.entries:
            text = str(entry)
            if entry.host.kind == "self":
                text += " (the app itself)"
            elif entry.host.kind in ("subdomain", "literal") and _service_chaining(entry.host.value):
                text += " (Spin service chaining: not supported, never allowed)"
            parts.append(text)
        return ", ".join(parts)
