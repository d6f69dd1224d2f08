"""Limits on slow, bloated and greedy clients, on live servers."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server.domain.form_tokens import FormTokens
from server.web.protocol import MAX_HEADER_BYTES
from tests.support import backends, live

SLUG = "save-russian-lgbt-network"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[live.LiveServer]:
    folder = tmp_path_factory.mktemp("guarded")
    url = backends.sqlite_url(folder)
    live.prepare(url)
    with live.LiveServer(url, folder, client_timeout=1) as server:
        yield server


def raw(server: live.LiveServer, data: bytes, *, wait: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=wait) as s:
        s.sendall(data)
        return s.recv(200)


def test_oversized_headers_get_431(guarded: live.LiveServer) -> None:
    big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 1_000_000 + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", guarded.port), timeout=5) as s:
        # Refused before we finished sending is fine too.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(big)
        reply = s.recv(200)
    assert reply.startswith(b"HTTP/1.1 431")


def test_headers_below_the_limit_pass(guarded: live.LiveServer) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (MAX_HEADER_BYTES // 2)
    assert raw(guarded, request + b"\r\n\r\n").startswith(b"HTTP/1.1 200")


def test_slow_headers_get_408(guarded: live.LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", guarded.port), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\n")
        reply = b""
        for _ in range(20):  # one header line every 0.2 s: never finishes on its own
            try:
                s.sendall(b"X-Drip: 1\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.2)
        reply = s.recv(200)
    assert reply.startswith(b"HTTP/1.1 408")


def test_silent_connection_is_closed(guarded: live.LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", guarded.port), timeout=10) as s:
        assert s.recv(200).startswith(b"HTTP/1.1 408")


def test_slow_body_gets_408(guarded: live.LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", guarded.port), timeout=10) as s:
        s.sendall(
            f"POST /api/petitions/{SLUG}/signatures HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/json\r\nAccept: application/json\r\n"
            "Content-Length: 100\r\n\r\n{".encode()
        )
        reply = s.recv(200)
    assert reply.startswith(b"HTTP/1.1 408")


def test_keep_alive_still_works(guarded: live.LiveServer) -> None:
    with httpx.Client(base_url=guarded.base_url) as c:
        for _ in range(3):
            assert c.get("/healthz").status_code == 200


@pytest.fixture(scope="module")
def patient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[live.LiveServer]:
    """A server that waits 60 s for slow clients (longer than any test here) and lets one
    address hold 20 connections."""
    folder = tmp_path_factory.mktemp("patient")
    url = backends.sqlite_url(folder)
    live.prepare(url)
    with live.LiveServer(url, folder, client_timeout=60, max_connections_per_client=20) as server:
        yield server


def drip(server: live.LiveServer, count: int) -> list[socket.socket]:
    """`count` connections from 127.0.0.1, each holding a request it never finishes."""
    sockets = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        s.sendall(b"POST /api/petitions/x/signatures HTTP/1.1\r\nHost: x\r\n")
        sockets.append(s)
    return sockets


def sign_from(server: live.LiveServer, address: str, times: int) -> list[int]:
    """Signatures sent from another loopback address, each given 5 s: far less than the
    drippers' 60, so a server that made signers wait for them fails here."""
    minter = FormTokens([live.SECRET], lifetime=7200, min_age=0)
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(base_url=server.base_url, timeout=5, transport=transport) as c:
        return [
            c.post(
                f"/api/petitions/{SLUG}/signatures",
                json={"token": minter.issue(SLUG), **live.new_signer()},
            ).status_code
            for _ in range(times)
        ]


def test_slow_clients_do_not_block_signers(patient: live.LiveServer) -> None:
    droppers = drip(patient, 20)
    try:
        assert sign_from(patient, "127.0.0.2", 5) == [201] * 5
    finally:
        for s in droppers:
            s.close()


def test_one_address_holds_only_so_many_connections(patient: live.LiveServer) -> None:
    droppers = drip(patient, 20)
    try:
        with socket.create_connection(("127.0.0.1", patient.port), timeout=5) as extra:
            reply = extra.recv(200)
        assert reply.startswith(b"HTTP/1.1 429") and b"retry-after: 1" in reply.lower()
        assert sign_from(patient, "127.0.0.3", 3) == [201] * 3  # others are not affected
    finally:
        for s in droppers:
            s.close()
    # Closed connections are given back: the address may connect again.
    deadline = time.monotonic() + 5
    while True:
        with httpx.Client(base_url=patient.base_url, timeout=5) as c:
            if c.get("/healthz").status_code == 200 or time.monotonic() > deadline:
                break
        time.sleep(0.1)
    with httpx.Client(base_url=patient.base_url, timeout=5) as c:
        assert c.get("/healthz").status_code == 200


def test_the_timeout_is_a_setting(tmp_path: Path) -> None:
    from server.settings import load

    assert load({"SECRET_KEYS": "k", "CLIENT_TIMEOUT": "2.5"}).client_timeout == 2.5
    limit = load({"SECRET_KEYS": "k", "MAX_CONNECTIONS_PER_CLIENT": "7"})
    assert limit.max_connections_per_client == 7


# --- Connection starvation ---------------------------------------------------------------------

ADDRESSES = 16
HELD = 256  # each: MAX_CONNECTIONS_PER_CLIENT, so that the per-address cap does not help


@pytest.fixture(scope="module")
def crowded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[live.LiveServer]:
    """A server as shipped, except that clients get 30 s for their headers and 60 s for a
    request: longer than the test, so only the cap on connections sending headers helps."""
    folder = tmp_path_factory.mktemp("crowded")
    url = backends.sqlite_url(folder)
    live.prepare(url)
    settings = {"client_timeout": 60, "header_timeout": 30}
    with live.LiveServer(url, folder, **settings) as server:
        yield server


def hold(server: live.LiveServer, address: str, count: int) -> list[socket.socket]:
    """`count` connections from `address` (any of 127/8 reaches loopback), each holding a
    request whose headers never end."""
    held = []
    for _ in range(count):
        s = socket.socket()
        s.settimeout(5)
        s.bind((address, 0))
        try:
            s.connect(("127.0.0.1", server.port))
            s.sendall(b"POST /api/petitions/x/signatures HTTP/1.1\r\nHost: x\r\n")
        except OSError:
            s.close()
            continue
        held.append(s)
    return held


def test_sixteen_addresses_cannot_fill_a_worker(crowded: live.LiveServer) -> None:
    """Regression: 16 addresses holding 256 half-sent requests each filled all 4,096
    connections of a worker, and every other signer got 503 for 10 s at a time."""
    held: list[socket.socket] = []
    try:
        for n in range(ADDRESSES):
            held += hold(crowded, f"127.0.1.{n + 1}", HELD)
        assert len(held) >= ADDRESSES * HELD - 16  # nearly all were accepted
        assert sign_from(crowded, "127.0.2.1", 5) == [201] * 5
    finally:
        for s in held:
            s.close()


def test_slow_headers_get_408_before_the_request_time(tmp_path: Path) -> None:
    url = backends.sqlite_url(tmp_path)
    live.prepare(url)
    with live.LiveServer(url, tmp_path, client_timeout=60, header_timeout=1) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=20) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            assert s.recv(200).startswith(b"HTTP/1.1 408")
        # Headers in time leave the body the rest of CLIENT_TIMEOUT: a body sent 1.5 s later
        # (past HEADER_TIMEOUT) is still read.
        with socket.create_connection(("127.0.0.1", server.port), timeout=20) as s:
            s.sendall(
                b"POST /api/petitions/x/signatures HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nAccept: application/json\r\n"
                b"Content-Length: 2\r\n\r\n"
            )
            time.sleep(1.5)
            s.sendall(b"{}")
            assert s.recv(200).startswith(b"HTTP/1.1 404")


def test_connections_are_counted_by_keyed_address_and_ipv6_64() -> None:
    from server.web.protocol import ClientKeys

    keys = ClientKeys()
    a, _ = keys.keys("2001:db8:1:2::/64")
    assert a == keys.keys("2001:db8:1:2::/64")[0] and len(a) == 16
    assert b"2001" not in a and a != keys.keys("2001:db8:1:3::/64")[0]
    assert ClientKeys().keys("2001:db8:1:2::/64")[0] != a  # each worker's key is its own
