"""uvicorn's httptools protocol with the limits it lacks: header size, header and request
time, connections sending headers, and connections per client address.

Out of the box, uvicorn (with httptools) accepts request headers of any size (10 MB headers were
answered 200 here) and waits forever for a client to finish sending a request, so a few slow or
bloated clients could hold memory and connections indefinitely. This subclass answers `431`
once the headers of one request pass `MAX_HEADER_BYTES`, and `408` when a client has not sent
a request's headers `HEADER_TIMEOUT` seconds, or the whole request (headers and body)
`CLIENT_TIMEOUT` seconds, after it started it (or after it connected). One timer per request
does this, so endpoints need no timers of their own.

Two caps keep slow clients from filling a worker's 4,096 connections (`limit_concurrency`,
past which uvicorn answers every request `503`):

- at most `MAX_CONNECTIONS_SENDING_HEADERS` connections per worker may be sending headers (or
  idle between requests, which looks the same): past it, the one that has been at it longest
  is closed with `408`. A browser sends its headers in one packet, so it is never the oldest;
  16 addresses holding 256 half-sent requests each filled a worker before this, and every other
  signer got `503` for 10 s at a time;
- one address (IPv4) or /64 (IPv6) may hold at most `MAX_CONNECTIONS_PER_CLIENT` connections
  per worker; more are answered `429` at once.

Those counts are per worker and in memory only, so they are keyed by an HMAC of the address
under a random key of this worker alone, made anew every 10 minutes (`ROTATE`), never by the
address. A reverse proxy in front is still the first line of defence; this keeps a bare
deployment safe.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import os
import secrets
import time
from typing import ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from server.domain.ratelimit import KEY_BYTES, ROTATE
from server.settings import SETTINGS, header_timeout_default, parse_networks
from server.web import client_address

MAX_HEADER_BYTES = 16 * 1024


# Read from the environment: uvicorn builds protocols itself, in every worker process.
def _setting(name: str) -> str:
    return os.environ.get(name) or SETTINGS[name].default


class ClientKeys:
    """This worker's keys for connection counts: the current one, and the one before it, as
    connections counted under it may still be open."""

    def __init__(self) -> None:
        self._keys: dict[int, bytes] = {}

    def keys(self, text: str) -> tuple[bytes, bytes]:
        """(HMAC under this period's key, HMAC under the last one's)."""
        period = int(time.time() // ROTATE)
        if period not in self._keys:
            self._keys = {p: k for p, k in self._keys.items() if p == period - 1}
            self._keys[period] = secrets.token_bytes(32)
        previous = self._keys.get(period - 1, self._keys[period])
        message = text.encode()
        return (
            hmac.digest(self._keys[period], message, "sha256")[:KEY_BYTES],
            hmac.digest(previous, message, "sha256")[:KEY_BYTES],
        )


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    timeout = float(_setting("CLIENT_TIMEOUT"))
    header_timeout = (
        float(os.environ["HEADER_TIMEOUT"])
        if os.environ.get("HEADER_TIMEOUT")
        else header_timeout_default(timeout)
    )
    per_client = int(_setting("MAX_CONNECTIONS_PER_CLIENT"))
    max_sending_headers = int(_setting("MAX_CONNECTIONS_SENDING_HEADERS"))
    proxies = parse_networks(_setting("TRUSTED_PROXIES"))
    # Per worker, in memory: connections open per keyed client, and those sending headers,
    # oldest first.
    open_by_client: ClassVar[collections.Counter[bytes]] = collections.Counter()
    sending_headers: ClassVar[dict[GuardedHttpToolsProtocol, None]] = {}
    client_keys: ClassVar[ClientKeys] = ClientKeys()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_bytes = 0
        self._in_headers = True  # counting header bytes
        self._receiving = True  # the request is not complete yet: its clock runs
        self._timer: asyncio.TimerHandle | None = None
        self._started = self.loop.time()
        self._client: bytes | None = None
        keys = self._limited_client(transport)
        if keys is not None:
            current, previous = keys
            held = self.open_by_client[current]
            if previous != current:
                held += self.open_by_client.get(previous, 0)
            if held >= self.per_client:
                self._refuse(b"429 Too Many Requests", b"retry-after: 1\r\n")
                return
            self._client = current
            self.open_by_client[current] += 1
        self._sending_headers()
        self._arm()

    def _limited_client(self, transport: asyncio.Transport) -> tuple[bytes, bytes] | None:
        """The keys of the peer's address (its /64 for IPv6), unless it is a trusted proxy
        (or not an IP socket)."""
        peer = transport.get_extra_info("peername")
        if not isinstance(peer, tuple) or not self.per_client:
            return None
        address = client_address.parse(str(peer[0]))
        if address is None:
            return None
        if self.proxies and any(address in n for n in self.proxies):
            return None
        return self.client_keys.keys(client_address.text_of(address))

    def _sending_headers(self) -> None:
        """Count this connection among those sending headers; past the cap, close the one that
        has been at it longest."""
        waiting = self.sending_headers
        waiting.pop(self, None)
        waiting[self] = None
        while len(waiting) > self.max_sending_headers:
            oldest = next(iter(waiting))
            if oldest is self:
                break
            oldest._refuse(b"408 Request Timeout")

    def _arm(self) -> None:
        if self._timer is None:
            self._started = self.loop.time()
            self._timer = self.loop.call_later(self.header_timeout, self._too_slow)

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
        self.sending_headers.pop(self, None)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._receiving = False
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        self._in_headers = self._receiving = True
        super().on_response_complete()
        if not self.transport.is_closing():  # kept alive: idle until its next request
            self._sending_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.sending_headers.pop(self, None)
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
        if not self._in_headers:
            # The headers came in time: the body has the rest of `CLIENT_TIMEOUT`. Re-armed
            # here, lazily, rather than at every request's end of headers (a GET never gets
            # this far: its timer is cancelled when it is complete).
            left = self._started + self.timeout - self.loop.time()
            if left > 0:
                self._timer = self.loop.call_later(left, self._too_slow)
                return
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()  # answered already (say, a 413 before the body): just hang up
        else:
            self._refuse(b"408 Request Timeout")

    def _refuse(self, status: bytes, headers: bytes = b"") -> None:
        self._disarm()
        self.sending_headers.pop(self, None)
        self.transport.write(
            b"HTTP/1.1 " + status + b"\r\n" + headers
            + b"content-length: 0\r\nconnection: close\r\n\r\n"
        )  # fmt: skip
        self.transport.close()
