"""Which addresses a webhook may reach: public ones, and the private networks an operator
allowed (GANFORGE_WEBHOOK_PRIVATE_ADDRESSES), so that a user's URL cannot make the service
POST to itself, its database, the cloud's metadata endpoint (169.254.169.254) or anything
else on the inside (server-side request forgery).

The API checks a URL when the webhook is created (a literal IP, or a name that resolves now);
the deliverer checks again at every delivery, on the addresses it is about to connect to, and
connects to the one it checked (shared/webhooks/transport.py), so a name that resolves to a
public address at creation and to a private one later (DNS rebinding) is refused too.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from shared.setting_fields import ConfigError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# socket.getaddrinfo's shape, so tests can stand in a resolver that answers what they need.
Resolver = Callable[..., list[tuple[Any, ...]]]

DEFAULT_PORTS = {"http": 80, "https": 443}
# IPv6 prefixes that carry an IPv4 address in their last 32 bits and reach it through a
# gateway (NAT64, RFC 6052); the IPv4 address inside is what decides.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class AddressRefusedError(ValueError):
    """The URL's host is, or resolves to, an address no webhook may reach; says which and why."""


class UnresolvableHostError(LookupError):
    """The URL's host has no address now (no such name, or DNS did not answer)."""


@dataclass(frozen=True)
class AddressPolicy:
    """Public addresses are allowed; others only inside one of `allowed` (none by default)."""

    allowed: tuple[IPNetwork, ...] = ()

    def refusal(self, address: IPAddress) -> str | None:
        """Why `address` may not be reached, or None when it may."""
        inner = embedded_ipv4(address)
        if any(_within(a, self.allowed) for a in (address, inner)):
            return None
        kind = non_public_kind(inner)
        if kind is None:
            return None
        shown = str(address) if inner == address else f"{address} (that is {inner})"
        return f"{shown} is {kind}, not a public address"

    def check(self, addresses: Sequence[IPAddress]) -> None:
        """Raise AddressRefusedError if any of `addresses` is refused: a name that resolves to a
        public and a private address is refused, as the client may pick either."""
        for address in addresses:
            reason = self.refusal(address)
            if reason is not None:
                raise AddressRefusedError(reason)


def _within(address: IPAddress, networks: Sequence[IPNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def embedded_ipv4(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one stands for (::ffff:a.b.c.d, 6to4, NAT64), else itself."""
    if isinstance(address, ipaddress.IPv4Address):
        return address
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def non_public_kind(address: IPAddress) -> str | None:
    """What kind of non-public address this is ("loopback", "private" ...), None if public.
    The named classes first, so the reason reads well; then anything not globally routable
    (shared address space 100.64.0.0/10, documentation ranges, IPv6 site-local)."""
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("site-local", isinstance(address, ipaddress.IPv6Address) and address.is_site_local),
        ("non-routable", not address.is_global),
    )
    return next((kind for kind, hit in checks if hit), None)


def literal_address(host: str) -> IPAddress | None:
    """The address a URL's host names literally (`urlsplit(url).hostname`: no brackets)."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])  # a zone (fe80::1%eth0) is no help
    except ValueError:
        return None


def resolve(host: str, port: int, resolver: Resolver = socket.getaddrinfo) -> list[IPAddress]:
    """Every address `host` has now, in the order a client would try them; a literal IP is
    itself. Raises UnresolvableHostError when there is none. Forms that only the C resolver
    reads as an address (`2130706433`, `0x7f.1`) come back as the address they mean."""
    from urllib3.util.connection import allowed_gai_family  # here: config imports this module

    literal = literal_address(host)
    if literal is not None:
        return [literal]
    try:
        found = resolver(host, port, allowed_gai_family(), socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise UnresolvableHostError(f"{host} does not resolve: {error}") from None
    addresses = [literal_address(str(sockaddr[0])) for *_, sockaddr in found]
    unique = list(dict.fromkeys(a for a in addresses if a is not None))
    if not unique:
        raise UnresolvableHostError(f"{host} has no address")
    return unique


def check_url(url: str, policy: AddressPolicy) -> None:
    """Refuse (AddressRefusedError) an http(s) URL whose host is, or now resolves to, an
    address `policy` refuses. A name that does not resolve yet passes: each delivery checks
    again, and a receiver may be set up after its webhook."""
    parts = urlsplit(url)
    try:
        addresses = resolve(parts.hostname or "", parts.port or DEFAULT_PORTS[parts.scheme])
    except UnresolvableHostError:
        return
    policy.check(addresses)


def parse_networks(name: str, raw: str) -> tuple[IPNetwork, ...]:
    """`10.0.0.0/8, 127.0.0.1, fd00::/8` as networks (a bare address is a /32 or /128)."""
    networks = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        try:
            networks.append(ipaddress.ip_network(item))
        except ValueError as error:
            raise ConfigError(f"{name} must list networks like 10.0.0.0/8: {error}") from None
    return tuple(networks)
