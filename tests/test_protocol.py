"""Limits on slow and bloated clients, on a live server (CLIENT_TIMEOUT=1 here)."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server.protocol import MAX_HEADER_BYTES
from server.tokens import FormTokens
from tests import backends, live

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


def test_slow_clients_do_not_block_signers(guarded: live.LiveServer) -> None:
    droppers = []
    try:
        for _ in range(100):
            s = socket.create_connection(("127.0.0.1", guarded.port), timeout=10)
            s.sendall(b"POST /api/petitions/x/signatures HTTP/1.1\r\nHost: x\r\n")
            droppers.append(s)
        minter = FormTokens([live.SECRET], lifetime=7200, min_age=0)
        with httpx.Client(base_url=guarded.base_url, timeout=5) as c:
            for _ in range(5):
                body = {"token": minter.issue(SLUG), **live.new_signer()}
                assert c.post(f"/api/petitions/{SLUG}/signatures", json=body).status_code == 201
    finally:
        for s in droppers:
            s.close()


def test_the_timeout_is_a_setting(tmp_path: Path) -> None:
    from server.settings import load

    assert load({"SECRET_KEYS": "k", "CLIENT_TIMEOUT": "2.5"}).client_timeout == 2.5
