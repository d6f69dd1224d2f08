"""Who is asking: the client's address, believed only as far as trusted proxies allow, and the
text that names it to rate limits (`client_text`): an IPv4 address, or an IPv6 address's /64,
as one household or phone usually holds a whole /64; and, for the aggregate limit, its
network (`network_text`: an IPv4 /24, an IPv6 /48). Limits key that text with an HMAC under a
rotating key of their own (`domain.ratelimit`); raw addresses are never stored nor held.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.types import Scope

from server.domain import abuse
from server.settings import Network

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
UNKNOWN = "unknown"  # a client without an IP address (a Unix socket): all such share a limit


def client_address(scope: Scope, trusted_proxies: Sequence[Network]) -> Address | None:
    """The address of the client that sent the request.

    `X-Forwarded-For` is read from the right, and only while the hop that appended it is one of
    `trusted_proxies`: the first untrusted hop is the client. A client cannot spoof its way in
    by sending its own header, because the proxy appends rather than replaces.
    """
    peer = parse((scope.get("client") or ("",))[0])
    if peer is None or not _trusted(peer, trusted_proxies):
        return peer
    forwarded: list[str] = []
    for name, value in scope["headers"]:
        if name == b"x-forwarded-for":
            forwarded.extend(part.strip() for part in value.decode("latin-1").split(","))
    for hop in reversed(forwarded):
        address = parse(hop)
        if address is None:
            return peer
        if not _trusted(address, trusted_proxies):
            return address
        peer = address
    return peer


def text_of(address: Address | None) -> str:
    """What a limit counts an address as: itself for IPv4, its /64 for IPv6."""
    if address is None:
        return UNKNOWN
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def network_text(address: Address | None) -> str:
    """What the aggregate limit counts an address as: its IPv4 /24 or IPv6 /48
    (`abuse.network_of`). The limiter keys it with its HMAC like any other (its own name keeps
    a network's count apart from an address's)."""
    return UNKNOWN if address is None else str(abuse.network_of(address))


def client_text(scope: Scope, trusted_proxies: Sequence[Network]) -> str:
    """`text_of` the request's client, worked out on every signature: an IPv4 peer reached
    directly (the common case) is taken as the socket gave it, which is already the canonical
    form, without parsing it."""
    host = (scope.get("client") or ("",))[0]
    if not trusted_proxies and host and ":" not in host:
        return str(host)
    return text_of(client_address(scope, trusted_proxies))


def parse(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _trusted(address: Address, networks: Sequence[Network]) -> bool:
    return any(address in network for network in networks)
