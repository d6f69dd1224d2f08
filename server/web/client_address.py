"""Who is asking: the client's address, believed only as far as trusted proxies allow, and the
keyed hash that stands for it everywhere (rate limits). Raw addresses are never stored.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Sequence

from starlette.types import Scope

from server.domain import abuse
from server.settings import Network

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def client_address(scope: Scope, trusted_proxies: Sequence[Network]) -> Address | None:
    """The address of the client that sent the request.

    `X-Forwarded-For` is read from the right, and only while the hop that appended it is one of
    `trusted_proxies`: the first untrusted hop is the client. A client cannot spoof its way in
    by sending its own header, because the proxy appends rather than replaces.
    """
    peer = _parse((scope.get("client") or ("",))[0])
    if peer is None or not _trusted(peer, trusted_proxies):
        return peer
    forwarded: list[str] = []
    for name, value in scope["headers"]:
        if name == b"x-forwarded-for":
            forwarded.extend(part.strip() for part in value.decode("latin-1").split(","))
    for hop in reversed(forwarded):
        address = _parse(hop)
        if address is None:
            return peer
        if not _trusted(address, trusted_proxies):
            return address
        peer = address
    return peer


def client_key(address: Address | None, secret: bytes) -> bytes:
    """A keyed hash standing for the client: IPv6 clients by their /64, as one household or
    phone usually holds a whole /64."""
    if address is None:
        text = "unknown"
    elif address.version == 6:
        text = str(ipaddress.ip_network(f"{address}/64", strict=False))
    else:
        text = str(address)
    return hmac.digest(secret, text.encode(), "sha256")[:16]


def network_key(address: Address | None, secret: bytes) -> bytes:
    """A keyed hash standing for the client's network, as the aggregate limit counts it: its
    IPv4 /24 or IPv6 /48 (`abuse.network_of`). Unlike `client_key`'s, its text says it is a
    network, so an address and a network never share a key."""
    text = "unknown" if address is None else f"net:{abuse.network_of(address)}"
    return hmac.digest(secret, text.encode(), "sha256")[:16]


def key_for(scope: Scope, trusted_proxies: Sequence[Network], secret: bytes) -> bytes:
    """`client_key` of the request's client, computed on every signature: an IPv4 peer reached
    directly (the common case) is hashed as the socket gave it, which is already the canonical
    form, without parsing it."""
    host = (scope.get("client") or ("",))[0]
    if not trusted_proxies and host and ":" not in host:
        return hmac.digest(secret, host.encode(), "sha256")[:16]
    return client_key(client_address(scope, trusted_proxies), secret)


def _parse(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _trusted(address: Address, networks: Sequence[Network]) -> bool:
    return any(address in network for network in networks)
