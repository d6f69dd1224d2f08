from __future__ import annotations

import ipaddress
from typing import Any

from server.web.client_address import client_address, client_key, key_for

PROXY = (ipaddress.ip_network("10.0.0.0/8"),)


def scope(peer: str, forwarded: str | None = None) -> dict[str, Any]:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return {"client": (peer, 1234), "headers": headers}


def test_direct_client_ignores_forwarded_header() -> None:
    assert str(client_address(scope("203.0.113.5", "1.2.3.4"), PROXY)) == "203.0.113.5"


def test_no_trusted_proxies_by_default() -> None:
    assert str(client_address(scope("10.0.0.1", "1.2.3.4"), ())) == "10.0.0.1"


def test_trusted_proxy_forwards_client() -> None:
    assert str(client_address(scope("10.0.0.1", "198.51.100.7"), PROXY)) == "198.51.100.7"


def test_spoofed_left_entries_are_not_believed() -> None:
    # The client sent "1.1.1.1" itself; our proxy appended the real address.
    assert str(client_address(scope("10.0.0.1", "1.1.1.1, 198.51.100.7"), PROXY)) == "198.51.100.7"


def test_chain_of_trusted_proxies() -> None:
    got = client_address(scope("10.0.0.1", "198.51.100.7, 10.2.3.4"), PROXY)
    assert str(got) == "198.51.100.7"


def test_garbage_forwarded_falls_back_to_peer() -> None:
    assert str(client_address(scope("10.0.0.1", "not-an-ip"), PROXY)) == "10.0.0.1"


def test_ipv6_clients_share_a_key_per_64() -> None:
    secret = b"k" * 32
    a = client_key(ipaddress.ip_address("2001:db8:1:2::1"), secret)
    b = client_key(ipaddress.ip_address("2001:db8:1:2:ffff::9"), secret)
    c = client_key(ipaddress.ip_address("2001:db8:1:3::1"), secret)
    assert a == b != c


def test_key_is_not_the_address() -> None:
    key = client_key(ipaddress.ip_address("203.0.113.5"), b"k" * 32)
    assert b"203.0.113.5" not in key and len(key) == 16
    assert key != client_key(ipaddress.ip_address("203.0.113.5"), b"j" * 32)


def test_fast_path_gives_the_same_key() -> None:
    secret = b"k" * 32
    for peer in ("203.0.113.5", "2001:db8::1", "::ffff:203.0.113.5"):
        slow = client_key(client_address(scope(peer), ()), secret)
        assert key_for(scope(peer), (), secret) == slow
    assert key_for(scope("::ffff:203.0.113.5"), (), secret) == key_for(
        scope("203.0.113.5"), (), secret
    )
    # Behind a trusted proxy the forwarded client counts, not the proxy.
    assert key_for(scope("10.0.0.1", "198.51.100.7"), PROXY, secret) == key_for(
        scope("198.51.100.7"), (), secret
    )
