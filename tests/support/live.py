"""A real server for tests: `petition-widget serve` in its own process on 127.0.0.1.

Every server's log is kept; at the end of the session the suite checks that no signer's name
or email used by any test appears in any of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from server.domain import sealing
from server.domain.petitions import Petition
from server.store.storage import Storage
from tests.support import petitions as examples

SECRET = "test-secret-" + "x" * 32
LOGS: list[Path] = []
SIGNERS: list[tuple[str, str]] = []  # (name, email) of every signer the tests made up


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def new_signer(tag: str = "") -> dict[str, str]:
    """A unique, recognisable signer; remembered for the log check."""
    suffix = secrets.token_hex(5)
    name = f"Zelda Testova{tag} {suffix}"
    email = f"zt.{suffix}{tag}@example.org"
    SIGNERS.append((name, email))
    return {"name": name, "email": email}


def prepare(
    database_url: str,
    petitions: list[Petition] | None = None,
    partners: Sequence[tuple[str, str, str]] = (),
) -> None:
    """Migrate the database and import petitions (the example one by default), then register
    `partners`, each (petition's slug, code, name)."""

    async def run() -> None:
        storage = Storage(database_url)
        await storage.connect()
        try:
            await storage.migrate()
            await storage.import_petitions(petitions or [examples.example()])
            for slug, code, name in partners:
                petition_id = await storage.petition_id(slug)
                assert petition_id is not None, slug
                await storage.add_partner(petition_id, code, name)
        finally:
            await storage.disconnect()

    asyncio.run(run())


EMAIL_HASH_KEY = "test-email-hash-key-0123456789abcdefghij"


def opened(payload: dict[str, Any]) -> dict[str, Any]:
    """An outbox mail row of a live server as its mail job opens it: the address and the links'
    tokens are kept encrypted under the server's hash key (the database's files never hold
    them in clear), opened here with that key."""
    box = payload.get("box")
    if not isinstance(box, str):
        return payload
    secrets = sealing.EmailHasher(EMAIL_HASH_KEY.encode()).open_mail(box)
    assert secrets is not None, "an outbox box this key does not open"
    return {**payload, **secrets}


def recipient(payload: dict[str, Any]) -> str:
    """The address of an outbox mail row of a live server (see `opened`)."""
    return str(opened(payload).get("to", ""))


class LiveServer:
    def __init__(self, database_url: str, folder: Path, **settings: str | int) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = folder / f"server-{self.port}.log"
        LOGS.append(self.log_path)
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in ("SECRET_KEYS", "DATABASE_URL")},
            "DATABASE_URL": database_url,
            "SECRET_KEYS": SECRET,
            # Shared by every worker (PostgreSQL needs it given; SQLite would make one).
            "EMAIL_HASH_KEY": EMAIL_HASH_KEY,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "TOKEN_MIN_AGE": "0",
            "RATE_SIGN_PER_MINUTE": "0",
            "RATE_CLIENT_PER_MINUTE": "0",
            "RATE_LOGIN_PER_MINUTE": "0",
            "RATE_NET_PER_MINUTE": "0",
            "COUNT_REFRESH": "0.2",
            "LOG_LEVEL": "info",
        }
        self.env.update({k.upper(): str(v) for k, v in settings.items()})
        self.command = [sys.executable, "-m", "server", "serve"]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> LiveServer:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: workers die with it
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}: {self.log()}")
            try:
                if httpx.get(self.url("/healthz"), timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not start: {self.log()}")

    def url(self, path: str) -> str:
        return self.base_url + path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 35.0) -> int | None:
        """SIGTERM, as a service manager would, and wait for a graceful exit."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """SIGKILL the whole process group: a crash, nothing gets to clean up."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def sign_in_from_link(page: Any, server: LiveServer, key: str) -> None:
    """In Chromium (`page`), follow a sign-in link (`/admin/login#key=...`, the demo prints
    them): the key's role and scope are shown, and only a click signs in."""
    page.goto(server.url(f"/admin/login#key={key}"))
    page.locator("#login-confirm").wait_for()
    assert key not in page.url
    page.locator("#login-confirm button").click()
    page.wait_for_url(lambda url: "/admin/login" not in url)
    assert key not in page.url


@contextlib.contextmanager
def demo(folder: Path) -> Iterator[tuple[str, Path]]:
    """`petition-widget demo` run in `folder` as a newcomer runs it: its URL and its output."""
    port = free_port()
    log = folder / "demo.log"
    LOGS.append(log)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEYS")}
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "server", "demo", "--port", str(port)],
            cwd=folder,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"the demo did not start: {log.read_text()}") from None
                time.sleep(0.1)
        yield base, log
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
