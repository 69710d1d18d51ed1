"""Delivery targets (SSRF): which addresses pushq may send requests to.

Pure functions, no I/O. The server asks twice: at enqueue with the URL's host
(`TargetPolicy.check_url`: IP literals in any spelling are judged at once, host
names only against the allow and deny lists), and at connect time with every
address a host name resolved to (`TargetPolicy.check_address`).

IP literals are read the way the resolver and socket layer would read them
(glibc's inet_aton and getaddrinfo): `2852039166`, `0xa9fea9fe`,
`0251.0376.0251.0376` and `169.254.43518` are all 169.254.169.254, and
`127.1` is 127.0.0.1. An IPv6 address that carries an IPv4 address
(IPv4-mapped, IPv4-compatible, IPv4-translated, NAT64, 6to4, Teredo) is judged
by the IPv4 address too, since that is where the packets end up.

Modes (`PUSHQ_TARGETS`):

- `private` (default): anything but link-local, cloud metadata, unspecified,
  multicast and broadcast addresses;
- `public`: public unicast only: also no loopback, RFC 1918, CGNAT, ULA,
  documentation, benchmarking or reserved ranges.

`PUSHQ_TARGETS_DENY` (CIDRs or host names, `*.example.com` for every name
under example.com) wins over everything; `PUSHQ_TARGETS_ALLOW` wins over the
mode.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network
from typing import Literal
from urllib.parse import unquote, urlsplit

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network
Mode = Literal["private", "public"]
MODES: tuple[Mode, ...] = ("private", "public")

# (range, what it is, refused in which modes); the first match names the reason,
# so a specific address comes before the range that holds it.
_BOTH: frozenset[Mode] = frozenset(MODES)
_PUBLIC: frozenset[Mode] = frozenset({"public"})
_RANGES: tuple[tuple[IPNetwork, str, frozenset[Mode]], ...] = tuple(
    (ip_network(cidr), what, modes)
    for cidr, what, modes in (
        ("169.254.169.254/32", "a cloud metadata address", _BOTH),
        ("100.100.100.200/32", "a cloud metadata address", _BOTH),
        ("fd00:ec2::254/128", "a cloud metadata address", _BOTH),
        ("169.254.0.0/16", "a link-local address", _BOTH),
        ("fe80::/10", "a link-local address", _BOTH),
        ("0.0.0.0/8", "an unspecified address", _BOTH),
        ("::/128", "an unspecified address", _BOTH),
        ("224.0.0.0/4", "a multicast address", _BOTH),
        ("ff00::/8", "a multicast address", _BOTH),
        ("255.255.255.255/32", "the broadcast address", _BOTH),
        ("127.0.0.0/8", "a loopback address", _PUBLIC),
        ("::1/128", "a loopback address", _PUBLIC),
        ("10.0.0.0/8", "a private address (RFC 1918)", _PUBLIC),
        ("172.16.0.0/12", "a private address (RFC 1918)", _PUBLIC),
        ("192.168.0.0/16", "a private address (RFC 1918)", _PUBLIC),
        ("100.64.0.0/10", "a shared address (CGNAT, RFC 6598)", _PUBLIC),
        ("fc00::/7", "a unique local address (ULA)", _PUBLIC),
        ("fec0::/10", "a site-local address", _PUBLIC),
        ("192.0.0.0/24", "an IETF protocol assignment", _PUBLIC),
        ("192.0.2.0/24", "a documentation address", _PUBLIC),
        ("198.51.100.0/24", "a documentation address", _PUBLIC),
        ("203.0.113.0/24", "a documentation address", _PUBLIC),
        ("2001:db8::/32", "a documentation address", _PUBLIC),
        ("198.18.0.0/15", "a benchmarking address", _PUBLIC),
        ("2001:2::/48", "a benchmarking address", _PUBLIC),
        ("240.0.0.0/4", "a reserved address", _PUBLIC),
        ("100::/64", "a discard-only address", _PUBLIC),
        ("64:ff9b:1::/48", "a local-use NAT64 address", _PUBLIC),
    )
)
_GLOBAL_UNICAST_V6 = IPv6Network("2000::/3")
_MAPPED = IPv6Network("::ffff:0:0/96")
_TRANSLATED = IPv6Network("::ffff:0:0:0/96")
_COMPATIBLE = IPv6Network("::/96")
_NAT64 = IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = IPv6Network("64:ff9b:1::/48")
_SIX_TO_FOUR = IPv6Network("2002::/16")
_TEREDO = IPv6Network("2001::/32")

_NUMBER_PART = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
_NAME_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a target may be sent to, and why (the reason is shown to API callers)."""

    allowed: bool
    reason: str


def parse_ipv4(text: str) -> IPv4Address | None:
    """`text` read as inet_aton reads it (decimal, 0x hex, 0 octal; 1 to 4 parts,
    the last filling the remaining bytes), or None when it is not an IPv4 literal."""
    parts = text.lower().split(".")
    if not 1 <= len(parts) <= 4 or not all(_NUMBER_PART.match(p) for p in parts):
        return None
    values = []
    for part in parts:
        if part.startswith("0x"):
            values.append(int(part[2:] or "0", 16))
        elif len(part) > 1 and part.startswith("0"):
            if not set(part) <= set("01234567"):
                return None
            values.append(int(part, 8))
        else:
            values.append(int(part))
    *leading, last = values
    if any(v > 255 for v in leading) or last >= 256 ** (4 - len(leading)):
        return None
    number = last
    for index, value in enumerate(leading):
        number += value << (8 * (3 - index))
    return IPv4Address(number)


def looks_numeric(host: str) -> bool:
    """True for hosts made only of number parts ("1.2.3.999", "0x1ffffffff"): no
    resolver takes them for names, so one that is not a valid address is refused."""
    return all(_NUMBER_PART.match(p) for p in host.lower().rstrip(".").split("."))


def parse_ip(host: str) -> IPAddress | None:
    """The address a URL host denotes when it is an IP literal in any spelling
    (brackets, a zone id, trailing dots, the IPv4 forms above), else None.

    Raises ValueError for a host that can only be a malformed IP literal."""
    text = unquote(host.strip()).lower()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" in text:
        address, _, _zone = text.partition("%")  # the zone picks an interface, not a host
        try:
            return IPv6Address(address)
        except ValueError:
            raise ValueError(f"{host!r} is not a valid IPv6 address") from None
    text = text.rstrip(".")
    ipv4 = parse_ipv4(text)
    if ipv4 is None and text and looks_numeric(text):
        raise ValueError(f"{host!r} is not a valid IPv4 address")
    return ipv4


def embedded_ipv4(address: IPv6Address) -> tuple[IPv4Address, str] | None:
    """The IPv4 address an IPv6 address carries, with the name of the form."""
    packed = address.packed
    if address in _MAPPED:
        return IPv4Address(packed[12:]), "IPv4-mapped"
    if address in _TRANSLATED:
        return IPv4Address(packed[12:]), "IPv4-translated"
    if address in _NAT64:
        return IPv4Address(packed[12:]), "NAT64"
    if address in _NAT64_LOCAL:  # RFC 6052 /48: bits 64-71 are the zero "u" octet
        return IPv4Address(packed[6:8] + packed[9:11]), "NAT64"
    if address in _SIX_TO_FOUR:
        return IPv4Address(packed[2:6]), "6to4"
    if address in _TEREDO and address.teredo is not None:
        return address.teredo[1], "Teredo"
    if address in _COMPATIBLE and int(address) > 1:
        return IPv4Address(packed[12:]), "IPv4-compatible"
    return None


def _range_of(address: IPAddress, mode: Mode) -> str | None:
    """What makes `address` refused in `mode`, or None."""
    for network, what, modes in _RANGES:
        if mode in modes and address.version == network.version and address in network:
            return what
    return None


def _is_name_rule(entry: str) -> bool:
    return not any(c in entry for c in ":/") and parse_ipv4(entry) is None


def _name_rule(entry: str) -> str:
    name = entry.lower().rstrip(".")
    labels = name.removeprefix("*.").split(".")
    if not all(_NAME_LABEL.match(label) for label in labels) or looks_numeric(name):
        raise ValueError(f"{entry!r} is neither a CIDR nor a host name")
    return name


def parse_rules(text: str) -> tuple[str, ...]:
    """A comma-separated list of CIDRs and host names, each checked; ValueError
    names the first bad entry."""
    entries = tuple(e.strip() for e in text.split(",") if e.strip())
    for entry in entries:
        if _is_name_rule(entry):
            _name_rule(entry)
        else:
            try:
                ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is neither a CIDR nor a host name") from None
    return entries


@dataclass(frozen=True, slots=True)
class _Rules:
    setting: str
    networks: tuple[IPNetwork, ...]
    names: tuple[str, ...]

    @classmethod
    def of(cls, setting: str, entries: tuple[str, ...]) -> _Rules:
        networks, names = [], []
        for entry in entries:
            if _is_name_rule(entry):
                names.append(_name_rule(entry))
            else:
                networks.append(ip_network(entry, strict=False))
        return cls(setting, tuple(networks), tuple(names))

    def name_match(self, host: str) -> str | None:
        host = host.lower().rstrip(".")
        for name in self.names:
            if name.startswith("*."):
                if host.endswith(name[1:]):
                    return name
            elif host == name:
                return name
        return None

    def address_match(self, address: IPAddress) -> IPNetwork | None:
        for network in self.networks:
            if address.version == network.version and address in network:
                return network
        return None


@dataclass(frozen=True)
class TargetPolicy:
    """`mode` with `allow` and `deny` entries (CIDRs or host names) refining it."""

    mode: Mode = "private"
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    _allow: _Rules = field(init=False, repr=False, compare=False)
    _deny: _Rules = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be private or public, not {self.mode!r}")
        object.__setattr__(self, "_allow", _Rules.of("PUSHQ_TARGETS_ALLOW", self.allow))
        object.__setattr__(self, "_deny", _Rules.of("PUSHQ_TARGETS_DENY", self.deny))

    def check_url(self, url: str) -> Decision:
        """The enqueue-time check of a delivery URL: its credentials and its host."""
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError as exc:
            return Decision(False, f"the URL is not valid: {exc}")
        if parts.username is not None or parts.password is not None:
            return Decision(
                False, "the URL holds credentials (user:password@); send them in a header"
            )
        if not host:
            return Decision(False, "the URL names no host")
        # urlsplit drops the brackets and lower-cases; the netloc keeps a zone id intact
        netloc_host = parts.netloc.rpartition("@")[2]
        if netloc_host.startswith("["):
            host = netloc_host.partition("]")[0] + "]"
        return self.check_host(host)

    def check_host(self, host: str) -> Decision:
        """A URL's host: an IP literal is judged now, a host name by the lists only
        (its addresses are judged when pushq connects)."""
        try:
            address = parse_ip(host)
        except ValueError as exc:
            return Decision(False, str(exc))
        if address is not None:
            return self.check_address(address, shown=host)
        denied = self._deny.name_match(host)
        if denied is not None:
            return Decision(False, f"{host} is denied by PUSHQ_TARGETS_DENY ({denied})")
        allowed = self._allow.name_match(host)
        if allowed is not None:
            return Decision(True, f"{host} is allowed by PUSHQ_TARGETS_ALLOW ({allowed})")
        return Decision(True, f"{host} is a host name: its addresses are checked at connect time")

    def check_address(
        self, address: IPAddress | str, *, host: str | None = None, shown: str | None = None
    ) -> Decision:
        """An address to connect to; `host` is the name it was resolved from, so the
        name's allow or deny entry applies; `shown` is how the caller spelled it."""
        if isinstance(address, str):
            parsed = parse_ip(address)
            if parsed is None:
                return Decision(False, f"{address!r} is not an IP address")
            address = parsed
        label = _label(address, shown if shown is not None else host)
        inner = embedded_ipv4(address) if isinstance(address, IPv6Address) else None
        candidates: list[IPAddress] = [address] + ([inner[0]] if inner else [])
        if host is not None and (denied := self._deny.name_match(host)) is not None:
            return Decision(False, f"{host} is denied by PUSHQ_TARGETS_DENY ({denied})")
        for candidate in candidates:
            if (network := self._deny.address_match(candidate)) is not None:
                return Decision(False, f"{label} is denied by PUSHQ_TARGETS_DENY ({network})")
        if host is not None and (allowed := self._allow.name_match(host)) is not None:
            return Decision(True, f"{host} is allowed by PUSHQ_TARGETS_ALLOW ({allowed})")
        for candidate in candidates:
            if (network := self._allow.address_match(candidate)) is not None:
                return Decision(True, f"{label} is allowed by PUSHQ_TARGETS_ALLOW ({network})")
        what = _range_of(address, self.mode)
        if what is not None:
            return Decision(False, f"{label} is {what}, refused under PUSHQ_TARGETS={self.mode}")
        if inner is not None:
            ipv4, form = inner
            what = _range_of(ipv4, self.mode)
            if what is not None:
                return Decision(
                    False,
                    f"{label} is {ipv4} in {_article(form)} {form} address, "
                    f"{what}, refused under PUSHQ_TARGETS={self.mode}",
                )
        elif (
            self.mode == "public"
            and isinstance(address, IPv6Address)
            and address not in _GLOBAL_UNICAST_V6
        ):
            return Decision(
                False,
                f"{label} is a reserved address (outside 2000::/3), "
                "refused under PUSHQ_TARGETS=public",
            )
        return Decision(True, f"{label} is allowed under PUSHQ_TARGETS={self.mode}")


def _label(address: IPAddress, spelled: str | None) -> str:
    """How an address is named in a reason: as given, with the normal form beside it."""
    if spelled is None or spelled.strip("[]").lower() == str(address):
        return str(address)
    return f"{spelled} ({address})"


def _article(word: str) -> str:
    return "an" if word[0] in "AEIOU" else "a"
