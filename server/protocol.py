"""uvicorn's httptools protocol with the two limits it lacks: header size and header time.

Out of the box, uvicorn (with httptools) accepts request headers of any size (10 MB headers were
answered 200 here) and waits forever for a client to finish sending them, so a few slow or
bloated clients could hold memory and connections indefinitely. This subclass answers
`431` once the headers of one request pass `MAX_HEADER_BYTES`, and `408` when a client has not
finished its headers `CLIENT_TIMEOUT` seconds after it started (or after it connected). The body
has its own limits in `payloads`. A reverse proxy in front is still the first line of defence;
this keeps a bare deployment safe too.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

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
        self._in_headers = True
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def data_received(self, data: bytes) -> None:
        if self._in_headers:
            self._arm()  # a new request on a kept-alive connection starts its clock now
        super().data_received(data)
        if self._in_headers and not self.transport.is_closing():
            self._header_bytes += len(data)
            if self._header_bytes > MAX_HEADER_BYTES:
                self._refuse(b"431 Request Header Fields Too Large")

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._header_bytes = 0
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        self._in_headers = True
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _too_slow(self) -> None:
        self._header_timer = None
        if self._in_headers and not self.transport.is_closing():
            self._refuse(b"408 Request Timeout")

    def _refuse(self, status: bytes) -> None:
        self._disarm()
        self.transport.write(
            b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )
        self.transport.close()


def protocol_options() -> dict[str, Any]:
    """uvicorn options selecting this protocol."""
    return {"http": GuardedHttpToolsProtocol}
