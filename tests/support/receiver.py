"""A CRM stand-in: a real HTTP server on 127.0.0.1 (the standard library's, in a thread) that
records every request, verifies it with the `standardwebhooks` library (the reference
implementation, not our signing code), and answers as the test says: 2xx, 500, 410, a redirect,
a huge or an endless body, or a dropped connection."""

from __future__ import annotations

import contextlib
import dataclasses
import http.server
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclasses.dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool  # by every secret the receiver was given for it (any one suffices)
    verified_by: list[int]  # indexes of the secrets that verified it
    status: int = 0  # what it was answered (0: no status, the connection was dropped or cut)

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]


@dataclasses.dataclass
class Receiver:
    port: int
    received: list[Received] = dataclasses.field(default_factory=list)
    secrets: list[str] = dataclasses.field(default_factory=list)
    #: What to answer: a status, or "drop" (close without answering), "huge", "endless".
    answer: Callable[[Received], int | str] = lambda _: 204
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def url(self, path: str = "/hook", host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    def accepted(self) -> list[Received]:
        """Requests answered 2xx, in arrival order."""
        with self.lock:
            return [r for r in self.received if r.status // 100 == 2]

    def wait(self, n: int, timeout: float = 10.0, *, accepted: bool = True) -> list[Received]:
        """The first `n` requests (accepted ones by default), waiting real time for them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.accepted() if accepted else list(self.received)
            if len(got) >= n:
                return got
            time.sleep(0.02)
        got = self.accepted() if accepted else list(self.received)
        raise AssertionError(f"{len(got)} requests arrived, not {n}")


def _verify(secrets: list[str], body: bytes, headers: dict[str, str]) -> list[int]:
    ok = []
    for i, secret in enumerate(secrets):
        try:
            Webhook(secret).verify(body, headers)
        except WebhookVerificationError:
            continue
        ok.append(i)
    return ok


@contextlib.contextmanager
def receiving(
    secrets: list[str] | None = None, tls: tuple[str, str] | None = None
) -> Iterator[Receiver]:
    """A receiver; with `tls` (certificate file, key file) it speaks HTTPS."""
    receiver: Receiver | None = None

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_POST(self) -> None:
            assert receiver is not None
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            by = _verify(receiver.secrets, body, headers)
            record = Received(self.path, headers, body, bool(by), by)
            answer = receiver.answer(record)
            record.status = answer if isinstance(answer, int) else 0
            with receiver.lock:
                receiver.received.append(record)
            if answer == "drop":
                self.close_connection = True
                return
            if answer in ("huge", "endless"):
                self.send_response(200 if answer == "huge" else 500)
                self.send_header("content-length", str(10**9))
                self.end_headers()
                chunk = b"x" * 65536
                try:
                    for _ in range(16 if answer == "huge" else 10**6):
                        self.wfile.write(chunk)
                except OSError:
                    pass  # the job stopped reading, as it should
                self.close_connection = True
                return
            assert isinstance(answer, int)
            try:
                self.send_response(answer)
                if 300 <= answer < 400:
                    self.send_header("location", f"http://127.0.0.1:{receiver.port}/elsewhere")
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except OSError:
                self.close_connection = True  # the sender is gone (killed, or it gave up)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    receiver = Receiver(server.server_address[1], secrets=list(secrets or []))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
