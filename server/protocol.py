"""uvicorn's httptools protocol with the two limits it lacks: header size and request time.

Out of the box, uvicorn (with httptools) accepts request headers of any size (10 MB headers were
answered 200 here) and waits forever for a client to finish sending a request, so a few slow or
bloated clients could hold memory and connections indefinitely. This subclass answers `431`
once the headers of one request pass `MAX_HEADER_BYTES`, and `408` when a client has not sent
its whole request (headers and body) `CLIENT_TIMEOUT` seconds after it started it (or after it
connected). One timer per request does this, so endpoints need no timers of their own. A
reverse proxy in front is still the first line of defence; this keeps a bare deployment safe.
"""

from __future__ import annotations

import asyncio
import os

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from server.settings import SETTINGS

MAX_HEADER_BYTES = 16 * 1024


def _client_timeout() -> float:
    # Read from the environment: uvicorn builds protocols itself, in every worker process.
    return float(os.environ.get("CLIENT_TIMEOUT") or SETTINGS["CLIENT_TIMEOUT"].default)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    timeout = _client_timeout()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_bytes = 0
        self._in_headers = True  # counting header bytes
        self._receiving = True  # the request is not complete yet: its clock runs
        self._timer: asyncio.TimerHandle | None = None
        self._arm()

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
        super().connection_lost(exc)

    def _too_slow(self) -> None:
        self._timer = None
        if not self._receiving or self.transport.is_closing():
            return
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()  # answered already (say, a 413 before the body): just hang up
        else:
            self._refuse(b"408 Request Timeout")

    def _refuse(self, status: bytes) -> None:
        self._disarm()
        self.transport.write(
            b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )
        self.transport.close()
