from __future__ import annotations

import ipaddress
from typing import Any

from server.web.client_address import client_address, client_text, text_of

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


def test_ipv6_clients_count_per_64() -> None:
    a = text_of(ipaddress.ip_address("2001:db8:1:2::1"))
    b = text_of(ipaddress.ip_address("2001:db8:1:2:ffff::9"))
    c = text_of(ipaddress.ip_address("2001:db8:1:3::1"))
    assert a == b == "2001:db8:1:2::/64" != c


def test_fast_path_gives_the_same_text() -> None:
    for peer in ("203.0.113.5", "2001:db8::1", "::ffff:203.0.113.5"):
        assert client_text(scope(peer), ()) == text_of(client_address(scope(peer), ()))
    assert client_text(scope("::ffff:203.0.113.5"), ()) == "203.0.113.5"
    # Behind a trusted proxy the forwarded client counts, not the proxy.
    assert client_text(scope("10.0.0.1", "198.51.100.7"), PROXY) == "198.51.100.7"
    assert client_text({"client": None, "headers": []}, ()) == "unknown"
