"""uvicorn's httptools protocol with the limits it lacks: header size, request time, and
connections per client address.

Out of the box, uvicorn (with httptools) accepts request headers of any size (10 MB headers were
answered 200 here) and waits forever for a client to finish sending a request, so a few slow or
bloated clients could hold memory and connections indefinitely. This subclass answers `431`
once the headers of one request pass `MAX_HEADER_BYTES`, and `408` when a client has not sent
its whole request (headers and body) `CLIENT_TIMEOUT` seconds after it started it (or after it
connected). One timer per request does this, so endpoints need no timers of their own. And one
address may hold at most `MAX_CONNECTIONS_PER_CLIENT` connections per worker: without that, a
single client dripping thousands of requests would fill uvicorn's `limit_concurrency`, and every
other signer would get `503` until its requests timed out. A reverse proxy in front is still
the first line of defence; this keeps a bare deployment safe.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import os
from typing import ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from server.settings import SETTINGS, parse_networks

MAX_HEADER_BYTES = 16 * 1024


# Read from the environment: uvicorn builds protocols itself, in every worker process.
def _setting(name: str) -> str:
    return os.environ.get(name) or SETTINGS[name].default


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    timeout = float(_setting("CLIENT_TIMEOUT"))
    per_client = int(_setting("MAX_CONNECTIONS_PER_CLIENT"))
    proxies = parse_networks(_setting("TRUSTED_PROXIES"))
    open_by_client: ClassVar[collections.Counter[str]] = collections.Counter()  # per worker

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_bytes = 0
        self._in_headers = True  # counting header bytes
        self._receiving = True  # the request is not complete yet: its clock runs
        self._timer: asyncio.TimerHandle | None = None
        self._client = self._limited_client(transport)
        if self._client is not None:
            if self.open_by_client[self._client] >= self.per_client:
                self._client = None
                self._refuse(b"429 Too Many Requests", b"retry-after: 1\r\n")
                return
            self.open_by_client[self._client] += 1
        self._arm()

    def _limited_client(self, transport: asyncio.Transport) -> str | None:
        """The peer's address, unless it is a trusted proxy (or not an IP socket)."""
        peer = transport.get_extra_info("peername")
        if not isinstance(peer, tuple) or not self.per_client:
            return None
        host = str(peer[0])
        if self.proxies and any(ipaddress.ip_address(host) in n for n in self.proxies):
            return None
        return host

    def _arm(self) -> None:
        if self._timer is None:
            self._timer = self.loop.call_later(self.timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def data_received(self, data: bytes) -> None:
        if self._receiving:
            self._arm()  # a new request on a kept-alive connection starts its clock now
        super().data_received(data)
        if self._in_headers and not self.transport.is_closing():
            self._header_bytes += len(data)
            if self._header_bytes > MAX_HEADER_BYTES:
                self._refuse(b"431 Request Header Fields Too Large")

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._header_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._receiving = False
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        self._in_headers = self._receiving = True
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._client is not None:
            self.open_by_client[self._client] -= 1
            if not self.open_by_client[self._client]:
                del self.open_by_client[self._client]
            self._client = None
        super().connection_lost(exc)

    def _too_slow(self) -> None:
        self._timer = None
        if not self._receiving or self.transport.is_closing():
            return
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()  # answered already (say, a 413 before the body): just hang up
        else:
            self._refuse(b"408 Request Timeout")

    def _refuse(self, status: bytes, headers: bytes = b"") -> None:
        self._disarm()
        self.transport.write(
            b"HTTP/1.1 " + status + b"\r\n" + headers
            + b"content-length: 0\r\nconnection: close\r\n\r\n"
        )  # fmt: skip
        self.transport.close()
