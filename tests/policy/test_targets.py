"""pushq.policy.targets: IP spellings, ranges and allow/deny lists, tested as tables.

Pure: nothing here resolves a name or opens a socket."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest

from pushq.policy.targets import TargetPolicy, embedded_ipv4, parse_ip, parse_ipv4, parse_rules

PRIVATE = TargetPolicy("private")
PUBLIC = TargetPolicy("public")

# Every spelling the resolver and socket layer read as an address (glibc inet_aton).
SPELLINGS = [
    ("169.254.169.254", "169.254.169.254"),
    ("2852039166", "169.254.169.254"),  # one 32-bit decimal
    ("0xa9fea9fe", "169.254.169.254"),  # one 32-bit hex
    ("0XA9FEA9FE", "169.254.169.254"),
    ("0251.0376.0251.0376", "169.254.169.254"),  # octal parts
    ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),  # hex parts
    ("0xa9.254.0251.0xfe", "169.254.169.254"),  # mixed
    ("169.254.43518", "169.254.169.254"),  # a.b.16-bit
    ("169.16689662", "169.254.169.254"),  # a.24-bit
    ("127.1", "127.0.0.1"),
    ("127.0.1", "127.0.0.1"),
    ("0", "0.0.0.0"),
    ("0x7f000001", "127.0.0.1"),
    ("017700000001", "127.0.0.1"),
    ("2130706433", "127.0.0.1"),
    ("10.0.0.1.", "10.0.0.1"),  # trailing dot
    ("10.0.0.1..", "10.0.0.1"),
    ("[::1]", "::1"),  # bracketed
    ("::ffff:169.254.169.254", "::ffff:a9fe:a9fe"),
    ("[::FFFF:A9FE:A9FE]", "::ffff:a9fe:a9fe"),
    ("fe80::1%eth0", "fe80::1"),  # zone id
    ("[fe80::1%25eth0]", "fe80::1"),  # zone id, percent-encoded as in a URL
    ("%31%32%37.0.0.1", "127.0.0.1"),  # percent-encoded digits
    ("example.com", None),
    ("localhost", None),
    ("1.example", None),
    ("0x7f.example", None),
]


@pytest.mark.parametrize(("host", "expected"), SPELLINGS)
def test_ip_literals_are_read_as_the_socket_layer_reads_them(
    host: str, expected: str | None
) -> None:
    address = parse_ip(host)
    assert (None if address is None else str(address)) == expected


@pytest.mark.parametrize(
    "host",
    [
        "1.2.3.999",
        "256.1.1.1",
        "1.2.3.4.5",
        "0x1ffffffff",
        "4294967296",
        "08.1.1.1",
        "0169.254.169.254",
        "[::g]",
        "1::2::3",
    ],
)
def test_malformed_literals_are_errors_not_names(host: str) -> None:
    with pytest.raises(ValueError, match="not a valid"):
        parse_ip(host)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.2.3.4", IPv4Address("1.2.3.4")),
        ("4294967295", IPv4Address("255.255.255.255")),
        ("0x", IPv4Address("0.0.0.0")),
        ("1.2.65535", IPv4Address("1.2.255.255")),
        ("1.2.65536", None),
        ("1.16777215", IPv4Address("1.255.255.255")),
        ("", None),
        ("a.b.c.d", None),
    ],
)
def test_parse_ipv4(text: str, expected: IPv4Address | None) -> None:
    assert parse_ipv4(text) == expected


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("::ffff:169.254.169.254", ("169.254.169.254", "IPv4-mapped")),
        ("::ffff:0:a9fe:a9fe", ("169.254.169.254", "IPv4-translated")),
        ("64:ff9b::a9fe:a9fe", ("169.254.169.254", "NAT64")),
        ("64:ff9b:1:a9fe:a9:fe00::", ("169.254.169.254", "NAT64")),  # RFC 6052 /48 layout
        ("2002:a9fe:a9fe::1", ("169.254.169.254", "6to4")),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", ("192.0.2.45", "Teredo")),
        ("::a9fe:a9fe", ("169.254.169.254", "IPv4-compatible")),
        ("::1", None),
        ("::", None),
        ("2606:4700::1111", None),
    ],
)
def test_embedded_ipv4(address: str, expected: tuple[str, str] | None) -> None:
    found = embedded_ipv4(IPv6Address(address))
    assert (None if found is None else (str(found[0]), found[1])) == expected


# Refused in both modes: (host, what the reason says).
ALWAYS_REFUSED = [
    ("169.254.169.254", "cloud metadata"),
    ("[fd00:ec2::254]", "cloud metadata"),
    ("100.100.100.200", "cloud metadata"),
    ("2852039166", "cloud metadata"),
    ("0xa9fea9fe", "cloud metadata"),
    ("0251.0376.0251.0376", "cloud metadata"),
    ("0xa9.0xfe.0xa9.0xfe", "cloud metadata"),
    ("169.254.43518", "cloud metadata"),
    ("169.254.169.254.", "cloud metadata"),
    ("[::ffff:169.254.169.254]", "in an IPv4-mapped address, a cloud metadata"),
    ("[::ffff:a9fe:a9fe]", "in an IPv4-mapped address, a cloud metadata"),
    ("[64:ff9b::169.254.169.254]", "in a NAT64 address, a cloud metadata"),
    ("[2002:a9fe:a9fe::]", "in a 6to4 address, a cloud metadata"),
    ("[::a9fe:a9fe]", "in an IPv4-compatible address, a cloud metadata"),
    ("169.254.1.1", "link-local"),
    ("[fe80::1]", "link-local"),
    ("[fe80::1%25eth0]", "link-local"),
    ("[fe80::a9fe:a9fe]", "link-local"),
    ("[::ffff:169.254.0.1]", "link-local"),
    ("0.0.0.0", "unspecified"),
    ("0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("[::]", "unspecified"),
    ("[::ffff:0.0.0.0]", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("[ff02::1]", "multicast"),
    ("[::ffff:224.0.0.1]", "multicast"),
    ("255.255.255.255", "broadcast"),
    ("1.2.3.999", "not a valid IPv4 address"),
]

# Allowed under private, refused under public.
PUBLIC_REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("2130706433", "loopback"),
    ("0x7f000001", "loopback"),
    ("017700000001", "loopback"),
    ("[::1]", "loopback"),
    ("[::ffff:127.0.0.1]", "in an IPv4-mapped address, a loopback"),
    ("[::127.0.0.1]", "in an IPv4-compatible address, a loopback"),
    ("10.0.0.1", "RFC 1918"),
    ("10.255.255.255", "RFC 1918"),
    ("172.16.0.1", "RFC 1918"),
    ("172.31.255.255", "RFC 1918"),
    ("192.168.1.1", "RFC 1918"),
    ("0xc0a80101", "RFC 1918"),
    ("[::ffff:10.0.0.1]", "in an IPv4-mapped address, a private address (RFC 1918)"),
    ("[::ffff:0:10.0.0.1]", "in an IPv4-translated address, a private address"),
    ("[64:ff9b::10.0.0.1]", "in a NAT64 address, a private address"),
    ("[2002:c0a8:101::1]", "in a 6to4 address, a private address"),
    ("[2001:0:4136:e378:8000:63bf:f5ff:fffe]", "in a Teredo address, a private address"),
    ("100.64.0.1", "CGNAT"),
    ("100.127.255.254", "CGNAT"),
    ("[::ffff:100.64.0.1]", "CGNAT"),
    ("[fc00::1]", "unique local"),
    ("[fd12:3456::1]", "unique local"),
    ("[fec0::1]", "site-local"),
    ("192.0.0.8", "IETF protocol assignment"),
    ("192.0.2.1", "documentation"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("[2001:db8::1]", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("240.0.0.1", "reserved"),
    ("[100::1]", "discard-only"),
    ("[64:ff9b:1:808:8:800::]", "local-use NAT64"),  # 8.8.8.8 via a local translator
    ("[4000::1]", "outside 2000::/3"),
]

ALWAYS_ALLOWED = [
    "8.8.8.8",
    "1.1.1.1",
    "100.63.255.255",  # just below CGNAT
    "100.128.0.0",  # just above
    "172.15.255.255",
    "172.32.0.0",
    "169.253.255.255",
    "[2606:4700:4700::1111]",
    "[::ffff:8.8.8.8]",
    "[64:ff9b::8.8.8.8]",
    "[2002:808:808::1]",
    "example.com",  # a name: its addresses are judged at connect time
    "localhost",
]


@pytest.mark.parametrize(("host", "reason"), ALWAYS_REFUSED)
@pytest.mark.parametrize("policy", [PRIVATE, PUBLIC], ids=["private", "public"])
def test_refused_in_both_modes(policy: TargetPolicy, host: str, reason: str) -> None:
    decision = policy.check_host(host)
    assert not decision.allowed
    assert reason in decision.reason


@pytest.mark.parametrize(("host", "reason"), PUBLIC_REFUSED)
def test_refused_only_in_public_mode(host: str, reason: str) -> None:
    assert PRIVATE.check_host(host).allowed, PRIVATE.check_host(host).reason
    decision = PUBLIC.check_host(host)
    assert not decision.allowed
    assert reason in decision.reason
    assert "PUSHQ_TARGETS=public" in decision.reason


@pytest.mark.parametrize("host", ALWAYS_ALLOWED)
@pytest.mark.parametrize("policy", [PRIVATE, PUBLIC], ids=["private", "public"])
def test_allowed_in_both_modes(policy: TargetPolicy, host: str) -> None:
    decision = policy.check_host(host)
    assert decision.allowed, decision.reason


def test_the_reason_shows_the_spelling_and_the_address() -> None:
    reason = PRIVATE.check_host("0xa9fea9fe").reason
    assert reason == (
        "0xa9fea9fe (169.254.169.254) is a cloud metadata address, "
        "refused under PUSHQ_TARGETS=private"
    )


@pytest.mark.parametrize(
    ("url", "allowed", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", False, "cloud metadata"),
        ("https://[fd00:ec2::254]:443/", False, "cloud metadata"),
        ("http://[fe80::1%25eth0]:8080/x", False, "link-local"),
        ("http://user:pass@example.com/", False, "credentials"),
        ("http://user@example.com/", False, "credentials"),
        ("http://:pass@example.com/", False, "credentials"),
        ("http://example.com:8080/path?q=1", True, "host name"),
        ("http://127.0.0.1:9000/", True, "private"),
        ("http:///nohost", False, "no host"),
    ],
)
def test_check_url(url: str, allowed: bool, reason: str) -> None:
    decision = PRIVATE.check_url(url)
    assert decision.allowed is allowed
    assert reason in decision.reason


# -- connect time: the addresses a name resolved to ----------------------------------


@pytest.mark.parametrize(
    ("policy", "address", "allowed"),
    [
        (PRIVATE, "127.0.0.1", True),
        (PRIVATE, "169.254.169.254", False),
        (PRIVATE, "::ffff:169.254.169.254", False),
        (PRIVATE, "fe80::1%eth0", False),  # as getnameinfo spells a link-local answer
        (PUBLIC, "127.0.0.1", False),
        (PUBLIC, "10.1.2.3", False),
        (PUBLIC, "93.184.215.14", True),
        (PUBLIC, "not-an-address", False),
    ],
)
def test_check_address(policy: TargetPolicy, address: str, allowed: bool) -> None:
    decision = policy.check_address(address, host="worker.example")
    assert decision.allowed is allowed
    if not allowed and address != "not-an-address":
        assert decision.reason.startswith("worker.example (")


# -- allow and deny lists ----------------------------------------------------------------


def test_allow_opens_a_range_in_public_mode() -> None:
    policy = TargetPolicy("public", allow=("10.1.0.0/16", "worker.internal"))
    assert policy.check_host("10.1.2.3").allowed
    assert "PUSHQ_TARGETS_ALLOW (10.1.0.0/16)" in policy.check_host("10.1.2.3").reason
    assert policy.check_host("[::ffff:10.1.2.3]").allowed  # the embedded address matches
    assert not policy.check_host("10.2.0.1").allowed
    # an allowed name may resolve anywhere, even to loopback
    assert policy.check_address("127.0.0.1", host="worker.internal").allowed
    assert policy.check_address("127.0.0.1", host="WORKER.internal.").allowed
    assert not policy.check_address("127.0.0.1", host="other.internal").allowed


def test_deny_wins_over_everything() -> None:
    policy = TargetPolicy(
        "private", allow=("10.0.0.0/8", "*.corp.example"), deny=("10.0.5.0/24", "db.corp.example")
    )
    assert policy.check_host("10.0.4.1").allowed
    decision = policy.check_host("10.0.5.1")
    assert not decision.allowed
    assert "PUSHQ_TARGETS_DENY (10.0.5.0/24)" in decision.reason
    assert not policy.check_host("[::ffff:10.0.5.1]").allowed
    assert not policy.check_host("db.corp.example").allowed  # names refused at enqueue
    assert not policy.check_address("10.0.4.1", host="db.corp.example").allowed
    assert policy.check_address("127.0.0.1", host="app.corp.example").allowed
    assert policy.check_host("app.corp.example").allowed


def test_wildcard_names_match_subdomains_only() -> None:
    policy = TargetPolicy("private", deny=("*.evil.example",))
    assert not policy.check_host("a.evil.example").allowed
    assert not policy.check_host("a.b.evil.example").allowed
    assert policy.check_host("evil.example").allowed
    assert policy.check_host("notevil.example").allowed


def test_deny_can_refuse_loopback_in_private_mode() -> None:
    policy = TargetPolicy("private", deny=("127.0.0.0/8", "::1"))
    assert not policy.check_host("127.1").allowed
    assert not policy.check_host("[::ffff:127.0.0.1]").allowed
    assert not policy.check_address("::1", host="localhost").allowed


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.0/8, 192.168.0.0/16", ("10.0.0.0/8", "192.168.0.0/16")),
        (
            "fd00::/8,worker.internal,*.corp.example",
            ("fd00::/8", "worker.internal", "*.corp.example"),
        ),
        ("10.0.0.1", ("10.0.0.1",)),
        (" , ", ()),
    ],
)
def test_parse_rules(text: str, expected: tuple[str, ...]) -> None:
    assert parse_rules(text) == expected


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "evil..com", "-bad.example", "1.2.3.999", "a b"])
def test_parse_rules_names_the_bad_entry(entry: str) -> None:
    with pytest.raises(ValueError, match="is neither a CIDR nor a host name"):
        parse_rules(f"10.0.0.0/8,{entry}")


def test_unknown_mode() -> None:
    with pytest.raises(ValueError, match="private or public"):
        TargetPolicy("internal")  # type: ignore[arg-type]
