"""The mail bench's SMTP sink: a real SMTP server on 127.0.0.1 that accepts every mail and keeps
it, so the server's mail job sends exactly as it would to a relay on the same machine.

`python -m bench.sink --port P --out FILE` runs in a process of its own (its CPU is then
counted apart from the server's and the driver's) on uvloop, as uvicorn does. While mails
arrive it does as little as it can per mail: it keeps the raw bytes and the envelope's
recipients in memory. On SIGUSR1 it writes what the bench checks, one JSON line per mail
(`message_id`, `to`, `confirm`: the token of the confirmation link in the text part, or
null), to FILE (through a temporary file, so the bench never reads half of it); on SIGTERM it
writes it once more and exits. `records` reads that file back; `servers.Sink` drives it.

SIGUSR2 makes it hold: a new connection is accepted and never greeted, so the mail job waits
on it until its send times out (15 s) and does next to nothing meanwhile. The profile uses
that to sample confirmations without mail sending mixed in.

aiosmtpd logs every recipient at INFO (`mail.log`): the sink keeps it at WARNING, so its log
holds no signer's address, like the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

HOSTNAME = "bench-sink.localhost"
_MESSAGE_ID = re.compile(rb"^Message-ID:\s*(<[^>\r\n]+>)", re.IGNORECASE | re.MULTILINE)
# The confirmation link in the text part: quoted-printable, so soft line breaks are undone
# first; a link token is 43 URL-safe base64 characters (`secrets.token_urlsafe(32)`).
_CONFIRM = re.compile(rb"/confirm/([A-Za-z0-9_-]{43})(?![A-Za-z0-9_-])")
_SOFT_BREAK = re.compile(rb"=\r?\n")


def record(raw: bytes, recipients: list[str]) -> dict[str, Any]:
    """What the bench checks of one mail: its Message-ID, its recipient, its confirm token."""
    found = _MESSAGE_ID.search(raw)
    link = _CONFIRM.search(_SOFT_BREAK.sub(b"", raw))
    return {
        "message_id": found.group(1).decode() if found else None,
        "to": ",".join(recipients),
        "confirm": link.group(1).decode() if link else None,
    }


def records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


class _Keep:
    """aiosmtpd's handler: accept the mail and keep it as sent."""

    def __init__(self) -> None:
        self.mails: list[tuple[bytes, list[str]]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mails.append((envelope.original_content or b"", list(envelope.rcpt_tos)))
        return "250 OK"


def _write(handler: _Keep, out: Path) -> None:
    part = out.with_name(out.name + ".part")
    with part.open("w") as file:
        for raw, recipients in handler.mails:
            file.write(json.dumps(record(raw, recipients)) + "\n")
    os.replace(part, out)


async def _serve(port: int, out: Path) -> None:
    from aiosmtpd.smtp import SMTP

    loop = asyncio.get_running_loop()
    handler = _Keep()
    held = asyncio.Event()

    def protocol() -> asyncio.BaseProtocol:
        if held.is_set():
            return asyncio.Protocol()  # says nothing, ever
        return SMTP(handler, hostname=HOSTNAME, enable_SMTPUTF8=True, loop=loop)

    server = await loop.create_server(protocol, "127.0.0.1", port)
    stopped = asyncio.Event()
    loop.add_signal_handler(signal.SIGUSR1, _write, handler, out)
    loop.add_signal_handler(signal.SIGUSR2, held.set)
    loop.add_signal_handler(signal.SIGTERM, stopped.set)
    loop.add_signal_handler(signal.SIGINT, stopped.set)
    await stopped.wait()
    server.close()
    _write(handler, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sink")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    try:
        import uvloop
    except ImportError:  # uvicorn[standard] brings it; without it, asyncio's own loop
        asyncio.run(_serve(args.port, args.out))
    else:
        uvloop.run(_serve(args.port, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
