"""`allowed_outbound_hosts` as Spin parses and matches it; the tables are Spin's own examples
(spin-outbound-networking-config's tests and the Spin docs), plus hostile hosts."""

from __future__ import annotations

import ipaddress
import json

import pytest

from wasikv.allowed_hosts import AllowedHost, AllowedHosts, parse_host, split_authority
from wasikv.errors import ConfigError

# entry -> its canonical form (scheme://host:ports, `a..b` excluding b)
PARSED = {
    "http://spin.fermyon.dev": "http://spin.fermyon.dev:80",
    "http://spin.fermyon.dev/": "http://spin.fermyon.dev:80",
    "https://spin.fermyon.dev": "https://spin.fermyon.dev:443",
    "http://spin.fermyon.dev:4444": "http://spin.fermyon.dev:4444",
    "http://spin.fermyon.dev:4444/": "http://spin.fermyon.dev:4444",
    "http://spin.fermyon.dev:4444..5555": "http://spin.fermyon.dev:4444..5555",
    "*://spin.fermyon.dev:7777": "*://spin.fermyon.dev:7777",
    "http://self": "http://self:80",
    "https://self.alt": "https://self:443",
    "http://localhost": "http://localhost:80",
    "http://localhost:3001": "http://localhost:3001",
    "http://*.example.com": "http://*.example.com:80",
    "http://*.Example.COM": "http://*.example.com:80",
    "http://192.168.1.1": "http://192.168.1.1:80",
    "http://192.168.1.1:3002": "http://192.168.1.1:3002",
    "http://[::1]:8001": "http://[::1]:8001",
    "http://[::1]": "http://[::1]:80",
    "https://[2001:db8::1]": "https://[2001:db8::1]:443",
    "http://[::1]:*": "http://[::1]:*",
    "http://[::1]:8000..9000": "http://[::1]:8000..9000",
    "*://[::1]:80": "*://[::1]:80",
    "http://[::1]:8080/": "http://[::1]:8080",
    "*://127.0.0.0/24:80": "*://127.0.0.0/24:80",
    "*://127.0.0.1/24:63551": "*://127.0.0.0/24:63551",
    "*://ff00::/8:80": "*://ff00::/8:80",
    "http://ff00::/8": "http://ff00::/8:80",
    "https://2001:db8::/32": "https://2001:db8::/32:443",
    "http://2001:db8::/32:443": "http://2001:db8::/32:443",
    "http://::1/128": "http://::1/128:80",
    "http://10.0.0.0/8": "http://10.0.0.0/8:80",
    "https://192.168.1.0/24": "https://192.168.1.0/24:443",
    "*://*:*": "*://*:*",
    "https://*:*": "https://*:*",
    "mysql://xyz.com": "mysql://xyz.com:3306",
    "postgres://db": "postgres://db:5432",
    "redis://cache": "redis://cache:6379",
    "mqtt://broker": "mqtt://broker:1883",
    "pg://localhost:5656": "pg://localhost:5656",
    "  https://padded.example  ": "https://padded.example:443",
    "http://x.y:+80": "http://x.y:80",
}

# Every entry Spin's tests reject, and why ours says it is wrong.
REJECTED = {
    "spin.fermyon.dev": "no scheme",
    "spin.fermyon.dev:80": "no scheme",
    "localhost:3001": "no scheme",
    "[::1]": "no scheme",
    "[::1]:8080": "no scheme",
    "*": "not an allowed host",
    "": "not an allowed host",
    "insecure:allow-all": "not accepted",
    "*://127.0.0.0/24": "no known default port",
    "*://example.com": "no known default port",
    "ftp://example.com": "no known default port",
    "http://spin.fermyon.dev/a": "path",
    "http://spin.fermyon.dev:6666/a/b": "path",
    "http://*.fermyon.dev/a": "path",
    "http://[::1]/foo": "path",
    "http://ff00::/8/extra": "path",
    "http://example.com:8080/p": "path",
    "http://*.example.com:8080/p": "path",
    "http://127.0.0.0/24/p": "path",
    "http://example.com//": "path",
    "http://*.example.com//": "path",
    "http://self//": "path",
    "http://[::1]//": "path",
    "http://[::1": "']'",
    "http://[::1]junk": "port",
    "http://[::1junk": "port",
    "http://[::1]::80": "']'",
    "http://[v1.]": "IPv6",
    "http://[vG.example]": "IPv6",
    "http://[fe80::1%25eth0]": "port",  # Spin reads the port first: "1%25eth0]"
    "http://example.com:notaport": "port",
    "http://example.com:8080..70000": "port range",
    "http://self:notaport": "port",
    "http://self.alt:notaport": "port",
    "http://*:notaport": "port",
    "http://127.0.0.1:notaport": "port",
    "http://[::1]:notaport": "port",
    "http://*.example.com:notaport": "port",
    "http://*.example.com:8080..": "port range",
    "http://*.example.com:8O8O": "port",
    "http://example.com:99999": "'99999'",
    "http://[::1]:99999": "'99999'",
    "http://ff00::/8:99999": "'99999'",
    "http://*.example.com:99999": "'99999'",
    "http://example.com:-1": "port",
    "http://example.com: 80": "port",
    "http://example.com:8_0": "port",
    "http://*.": "empty",
    "http://*.:8080": "empty",
    "http://": "empty",
    "http://:80": "empty",
    "http://example%.com": "'%'",
    "http://example%2.com": "'%'",
    "http://example%GG.com": "'%'",
    "http://exa[mple.com": "'['",
    "http://exa\\mple.com": "contains",
    "http://example.com:80:90": "':'",
    "http://exa mple.com": "' '",
    "http://*.127.0.0.1": "domain",
    "http://*.192.168.001.001": "domain",
    "http://*.[::1]": "port",
    "http://a.*.example.com": "first label",
    "http://*.*.example.com": "first label",
    "http://example.*": "first label",
    "http://{a,b}.example.com": "host lists",
    "{http,https}://example.com:80": "scheme lists",
    "http://example.com:{80,81}": "port lists",
    "ht-tp://example.com:80": "only letters",
    "http://1.2.3.4.5": "IPv4",
    "http://256.1.1.1": "IPv4",
    "http://0x100000000": "IPv4",
    "http://example.0x": "IPv4",
    "http://xn--a.example": "punycode",
}


@pytest.mark.parametrize(("entry", "canonical"), PARSED.items())
def test_spin_entries_parse_to_their_scheme_host_and_ports(entry: str, canonical: str) -> None:
    assert str(AllowedHost.parse(entry)) == canonical


@pytest.mark.parametrize(("entry", "reason"), REJECTED.items())
def test_invalid_entries_are_config_errors_naming_the_entry(entry: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        AllowedHosts.parse(["https://fine.example", entry] if entry != "insecure:allow-all" else [entry])
    message = str(caught.value)
    assert f"allowed_outbound_hosts entry {json.dumps(entry)}" in message
    assert reason in message


def test_insecure_allow_all_among_others_is_an_error_too() -> None:
    with pytest.raises(ConfigError, match="no scheme"):
        AllowedHosts.parse(["https://spin.fermyon.dev", "insecure:allow-all"])


# (entries, [(scheme, authority, allowed)]): Spin's matching tests, requests written as URL authorities.
MATCHES: dict[str, tuple[list[str], list[tuple[str, str, bool]]]] = {
    "specific": (
        ["*://spin.fermyon.dev:443", "http://example.com:8383"],
        [
            ("http", "example.com:8383", True),
            ("https", "spin.fermyon.dev", True),
            ("https", "spin.fermyon.dev:443", True),
            ("http", "spin.fermyon.dev:443", True),
            ("http", "spin.fermyon.dev", False),
            ("http", "example.com", False),
            ("https", "example.com:8383", False),
            ("http", "google.com", False),
            ("http", "user:secret@example.com:8383", True),
        ],
    ),
    "trailing slash": (
        ["https://my.api.com/"],
        [("https", "my.api.com", True), ("http", "my.api.com", False)],
    ),
    "subdomain wildcards": (
        ["http://*.example.com", "http://*.example2.com:8383"],
        [
            ("http", "a.example.com", True),
            ("http", "a.b.example.com", True),
            ("http", "A.B.EXAMPLE.COM", True),
            ("http", "a.b.example2.com:8383", True),
            ("http", "a.b.example2.com", False),
            ("http", "example.com", False),
            ("http", "example.com:8383", False),
            ("http", "myexample.com", False),
            ("http", "a.example.com.evil.test", False),
            ("http", "a.example.com.", False),
            ("https", "a.example.com", False),
        ],
    ),
    "case-insensitive wildcard": (
        ["http://*.Example.COM"],
        [
            ("http", "foo.example.com", True),
            ("http", "a.b.example.com", True),
            ("http", "example.com", False),
        ],
    ),
    "cidr": (
        ["*://127.0.0.1/24:63551"],
        [
            ("tcp", "127.0.0.1:63551", True),
            ("http", "127.0.0.200:63551", True),
            ("http", "127.0.1.1:63551", False),
            ("http", "127.0.0.1:63552", False),
            ("http", "localhost:63551", False),
            ("http", "[::ffff:127.0.0.1]:63551", False),
        ],
    ),
    "ipv4 cidr, default port": (
        ["https://192.168.1.0/24"],
        [("https", "192.168.1.77", True), ("https", "192.168.2.1", False), ("http", "192.168.1.77", False)],
    ),
    "ipv6 literal": (
        ["http://[::1]"],
        [
            ("http", "[::1]", True),
            ("http", "[::1]:80", True),
            ("http", "[0:0:0:0:0:0:0:1]", True),
            ("http", "[::2]", False),
            ("http", "[::1]:81", False),
            ("http", "127.0.0.1", False),
        ],
    ),
    "ipv6 cidr": (
        ["http://2001:db8::/32"],
        [
            ("http", "[2001:db8::1]", True),
            ("http", "[2001:db8:abcd::1]", True),
            ("http", "[2001:db9::1]", False),
        ],
    ),
    "port range excludes its end": (
        ["http://localhost:1000..2000"],
        [
            ("http", "localhost:1000", True),
            ("http", "localhost:1999", True),
            ("http", "localhost:2000", False),
            ("http", "localhost:999", False),
            ("http", "localhost", False),
        ],
    ),
    "any port of one host": (
        ["*://example.com:*"],
        [("https", "example.com", True), ("http", "example.com:1", True), ("http", "www.example.com", False)],
    ),
    "ip address written other ways": (
        ["http://127.0.0.1:8080"],
        [
            ("http", "127.0.0.1:8080", True),
            ("http", "0x7f.1:8080", True),
            ("http", "2130706433:8080", True),
            ("http", "0177.0.0.1:8080", True),
            ("http", "127.1:8080", True),
            ("http", "%31%32%37.0.0.1:8080", True),
            ("http", "127.0.0.2:8080", False),
            ("http", "localhost:8080", False),
        ],
    ),
    "http only": (
        ["http://*:*"],
        [("http", "anything.example:9", True), ("HTTP", "a.example", True), ("https", "a.example", False)],
    ),
    "self is no host": (
        ["http://self", "https://self.alt"],
        [("http", "self", False), ("http", "self.alt", False)],
    ),
    "allow all": (
        ["*://*:*"],
        [
            ("http", "example.com", True),
            ("https", "10.1.2.3:65535", True),
            ("ws", "[::1]:1", True),
            ("http", "authz.spin.internal", False),
            ("http", "a.b.spin.internal.", False),
        ],
    ),
    "invalid request hosts": (
        ["*://*:*"],
        [
            ("http", "exa mple.com", False),
            ("http", "[::1", False),
            ("http", "", False),
            ("http", "256.0.0.1", False),
        ],
    ),
    "nothing": ([], [("http", "example.com", False), ("https", "localhost", False)]),
}


@pytest.mark.parametrize("name", MATCHES)
def test_requests_match_as_in_spin(name: str) -> None:
    entries, requests = MATCHES[name]
    allowed = AllowedHosts.parse(entries)
    for scheme, authority, expected in requests:
        try:
            host, port = split_authority(authority)
        except ValueError:
            host, port = authority, None
        assert allowed.allows(scheme, host, port) is expected, (scheme, authority)


def test_self_requests_need_a_self_entry_or_a_wildcard_host() -> None:
    assert AllowedHosts.parse(["http://self"]).allows_self()
    assert AllowedHosts.parse(["https://self.alt"]).allows_self()
    assert AllowedHosts.parse(["*://*:*"]).allows_self()
    assert AllowedHosts.parse(["http://*:8080"]).allows_self()
    assert not AllowedHosts.parse(["mysql://self"]).allows_self()
    assert not AllowedHosts.parse(["https://example.com"]).allows_self()
    assert not AllowedHosts.parse([]).allows_self()


def test_allow_all_only_for_every_scheme_host_and_port() -> None:
    assert AllowedHosts.parse(["https://example.com", "*://*:*"]).allow_all
    assert not AllowedHosts.parse(["http://*:*", "https://*:*"]).allow_all
    assert not AllowedHosts.parse(["*://*:443"]).allow_all
    assert not AllowedHosts.parse([]).allow_all


def test_templates_are_expanded_by_the_hook_and_empty_ones_dropped() -> None:
    values = {"api_host": "api.example.com", "port": "8443", "optional": ""}

    def expand(template: str) -> str:
        for name, value in values.items():
            template = template.replace("{{ " + name + " }}", value)
        return template

    allowed = AllowedHosts.parse(
        ["https://{{ api_host }}:{{ port }}", "https://{{ optional }}", "{{ optional }}", "http://fixed"],
        expand=expand,
    )
    assert [str(entry) for entry in allowed.entries] == ["https://api.example.com:8443", "http://fixed:80"]
    assert allowed.allows("https", "api.example.com", 8443)
    with pytest.raises(ConfigError, match=r'"https://\{\{ api_host \}\}" uses variables'):
        AllowedHosts.parse(["https://{{ api_host }}"])
    values["api_host"] = "zoinks, Scooby!"
    with pytest.raises(ConfigError) as caught:
        AllowedHosts.parse(["https://{{ api_host }}"], expand=expand)
    assert '"https://{{ api_host }}" is "https://zoinks, Scooby!"' in str(caught.value)


def test_describe_says_what_is_allowed() -> None:
    assert AllowedHosts.parse([]).describe() == "no outbound requests"
    assert "every scheme, host and port" in AllowedHosts.parse(["*://*:*"]).describe()
    described = AllowedHosts.parse(
        [
            "https://api.example.com",
            "http://*.example.com:8000..9000",
            "http://self",
            "http://authz.spin.internal",
        ]
    ).describe()
    assert described == (
        "https://api.example.com:443, http://*.example.com:8000..9000, http://self:80 (the app itself), "
        "http://authz.spin.internal:80 (Spin service chaining: not supported, never allowed)"
    )


@pytest.mark.parametrize(
    ("text", "host"),
    [
        ("Example.COM", "example.com"),
        ("example.com.", "example.com."),
        ("b\u00fccher.example", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("10.0.0.1", ipaddress.IPv4Address("10.0.0.1")),
        ("0x0A.0.0.1", ipaddress.IPv4Address("10.0.0.1")),
        ("10.1", ipaddress.IPv4Address("10.0.0.1")),
        ("167772161", ipaddress.IPv4Address("10.0.0.1")),
        ("10.0.0.1.", ipaddress.IPv4Address("10.0.0.1")),
        ("[::FFFF:10.0.0.1]", ipaddress.IPv6Address("::ffff:10.0.0.1")),
        ("[2001:DB8::1]", ipaddress.IPv6Address("2001:db8::1")),
        ("%65xample.com", "example.com"),
    ],
)
def test_hosts_are_read_as_url_hosts(text: str, host: object) -> None:
    assert parse_host(text) == host


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[::1",
        "::1",
        "[fe80::1%eth0]",
        "a b",
        "a/b",
        "a@b",
        "a:b",
        "1.2.3.4.5",
        "0x1g.0.0.1",
        "a.09",
        "\x00a",
        "%00a",
    ],
)
def test_invalid_hosts_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_host(text)


@pytest.mark.parametrize(
    ("authority", "split"),
    [
        ("example.com", ("example.com", None)),
        ("example.com:8080", ("example.com", 8080)),
        ("example.com:", ("example.com", None)),
        ("user:pw@example.com:1", ("example.com", 1)),
        ("[::1]:443", ("[::1]", 443)),
        ("[::1]", ("[::1]", None)),
    ],
)
def test_authorities_split_into_host_and_port(authority: str, split: tuple[str, int | None]) -> None:
    assert split_authority(authority) == split


@pytest.mark.parametrize(
    "authority", ["example.com:http", "example.com:65536", "[::1", "[::1]x", "a:-1", "a:\u0661"]
)
def test_invalid_authorities_are_refused(authority: str) -> None:
    with pytest.raises(ValueError):
        split_authority(authority)
