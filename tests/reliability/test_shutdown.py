"""SIGTERM under load: signatures in flight finish and are acknowledged, new ones are refused
cleanly (the connection is refused, never a 5xx), and nothing acknowledged is missing.

What is in flight at the signal is not left to timing. The load's own requests may or may not be
inside the server when it begins to shut down, and its client reads answers whenever its thread
gets the CPU: on a busy machine it may read answers the server wrote before the signal only after
the process has ended. So a few signatures are held open by hand instead: the server has begun
each (it asked for the body with `100 Continue`), it has begun shutting down (its log says so),
and only then is the body sent. Each must still be answered 201 and stored.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

from server.domain.form_tokens import FormTokens
from tests.support import db, live
from tests.support.load import SLUG, SignLoad

HELD = 4  # signatures the server has begun when it is told to stop


class HeldSignature:
    """A signature request the server has begun but cannot finish until `finish` sends its body."""

    def __init__(self, server: live.LiveServer) -> None:
        self.person = live.new_signer("H")
        token = FormTokens([live.SECRET], lifetime=7200, min_age=0).issue(SLUG)
        self.body = json.dumps({"token": token, **self.person}).encode()
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        self.sock.sendall(
            (
                f"POST /api/petitions/{SLUG}/signatures HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{server.port}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(self.body)}\r\n"
                "Expect: 100-continue\r\n"
                "Connection: close\r\n\r\n"
            ).encode()
        )
        # uvicorn writes 100 Continue when the endpoint first asks for the body: from here on the
        # request is in the server's hands, and a graceful shutdown has to wait for it.
        interim = self._read_head()
        assert interim.startswith(b"HTTP/1.1 100 "), interim

    def _read_head(self) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise AssertionError(f"connection closed before an answer: {data!r}")
            data += chunk
        return data

    def finish(self) -> bytes:
        """Send the body; the whole answer, read until the server closes the connection."""
        self.sock.sendall(self.body)
        answer = b""
        while chunk := self.sock.recv(4096):
            answer += chunk
        self.close()
        return answer

    def close(self) -> None:
        self.sock.close()


def wait_for_log(server: live.LiveServer, text: str, timeout: float = 30.0) -> None:
    assert server.process is not None
    deadline = time.monotonic() + timeout
    while True:
        ended = server.process.poll() is not None  # looked at before the log, which it may end
        if text in server.log():
            return
        if ended or time.monotonic() > deadline:
            raise TimeoutError(f"{text!r} never logged: {server.log()}")
        time.sleep(0.02)


def test_sigterm_finishes_in_flight_signatures(tmp_path: Path, database_url: str) -> None:
    live.prepare(database_url)
    server = live.LiveServer(database_url, tmp_path).start()
    assert server.process is not None
    load = SignLoad(server.base_url, concurrency=32).start()
    held: list[HeldSignature] = []
    try:
        load.wait_for(200)
        held += [HeldSignature(server) for _ in range(HELD)]
        os.killpg(server.process.pid, signal.SIGTERM)  # as a service manager would
        # uvicorn logs this, then stops accepting and closes idle connections, before it next
        # reads from any socket: the bodies sent now arrive after the shutdown began.
        wait_for_log(server, "Shutting down")
        answers = [h.finish() for h in held]
        exit_code = server.process.wait(35)
        # Nothing of the server is left that could take or acknowledge a signature...
        try:
            os.killpg(server.process.pid, 0)
            survivors = True
        except ProcessLookupError:
            survivors = False
        assert not survivors, "processes of the server outlived it"
        # ...and signatures sent from now on are refused at the connection.
        load.wait_for_outcome("ConnectError")
    finally:
        for h in held:
            h.close()
        load.stop()
        server.kill()
    # uvicorn finishes gracefully, then re-raises the signal so the exit status says SIGTERM.
    assert exit_code in (0, -15)
    assert "Application shutdown complete" in server.log()
    # Signatures in flight at the signal were finished and answered, not dropped.
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 201 "), answer
    # Whatever else was not acknowledged failed at the connection: no error answers at all.
    answered = {k for k in load.outcomes if k.isdigit()}
    assert answered == {"201"}, load.outcomes
    # The load has stopped: every answer it will ever count is in `acked`, including those the
    # server wrote before it exited and the client read only afterwards.
    acknowledged = set(load.acked) | {h.person["email"] for h in held}
    assert len(acknowledged) == len(load.acked) + HELD
    report = db.audit(database_url)
    # Every acknowledged signature is stored, and every stored one was acknowledged: requests
    # in flight were completed and answered, not dropped after their commit.
    assert report["emails"] == acknowledged
    assert report["counted"] == report["rows"] == len(acknowledged)
