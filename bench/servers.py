"""The servers under load, each a process group of its own on 127.0.0.1: ours started as in
production (`python -m server serve`, settings from the environment) and the bare baseline
(`python -m bench.bare`), with the same uvicorn options and worker count.
"""

from __future__ import annotations

import asyncio
import dataclasses
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from server.domain.petitions import load_file
from server.store.storage import Storage
from server.web import bundle

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    """One GET on 127.0.0.1: status, headers (lower-case names) and the body as sent."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        conn.close()


class Server:
    """A server process (and its workers) with its log in a file."""

    def __init__(
        self, name: str, port: int, argv: list[str], env: dict[str, str], log: Path
    ) -> None:
        self.name = name
        self.port = port
        self.argv = argv
        self.env = {**env, "PYTHONPATH": str(ROOT)}
        self.log_path = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> Server:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: the workers go with it
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{self.log_tail()}")
            try:
                if get(self.port, "/healthz")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not start:\n{self.log_tail()}")

    def stop(self, timeout: float = 45.0) -> None:
        """SIGTERM, as a service manager does: uvicorn finishes requests, the writer commits."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
            raise RuntimeError(f"{self.name} did not stop within {timeout:.0f} s") from None

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def peak_rss(self) -> dict[str, int]:
        """Peak resident memory (VmHWM, KiB) of the server and each of its processes: with one
        worker uvicorn serves in the process we started; with more, that process supervises
        worker processes (and multiprocessing starts a small resource tracker)."""
        assert self.process is not None
        found = {}
        for n, pid in enumerate(_descendants(self.process.pid), start=1):
            cmdline = _cmdline(pid)
            if "resource_tracker" in cmdline:
                role = "resource tracker"
            elif "multiprocessing" in cmdline:
                role = f"worker {n}"
            else:
                role = f"process {pid}"
            kib = _vm_hwm(pid)
            if kib is not None:
                found[role] = kib
        kib = _vm_hwm(self.process.pid)
        if kib is not None:
            found = {"supervisor" if found else "server": kib, **found}
        return found

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def bare_server(workers: int, log: Path) -> Server:
    port = free_port()
    argv = [sys.executable, "-m", "bench.bare", "--port", str(port), "--workers", str(workers)]
    return Server("bare Starlette", port, argv, dict(os.environ), log)


MAIL_FROM = "petitions@bench.example.org"  # its domain ends each Message-ID


def our_server(
    database_url: str,
    workers: int,
    secret: str,
    log: Path,
    *,
    smtp_port: int | None = None,
    sealing_key: str = "",
) -> Server:
    """Our server; with `smtp_port`, mail goes to that port on 127.0.0.1 (a `Sink`), as to a
    relay on the same machine (plain SMTP, which `SMTP_URL` allows only to a loopback
    address), and its links are built on the server's own address: the mail job runs."""
    ours = ("SECRET_KEYS", "DATABASE_URL", "SMTP_URL", "MAIL_FROM", "BASE_URL",
            "SEALING_PUBLIC_KEY", "EMAIL_HASH_KEY")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ours}
    port = free_port()
    server = Server("petition-widget", port, [sys.executable, "-m", "server", "serve"], env, log)
    server.env.update(
        DATABASE_URL=database_url,
        SECRET_KEYS=secret,
        EMAIL_HASH_KEY=email_hash_key(secret),  # every worker hashes alike
        HOST="127.0.0.1",
        PORT=str(port),
        WORKERS=str(workers),
        # Pre-issued tokens are used at once. The whole load comes from one address, so the
        # rate limits are set far above it: they still run (and cost what they cost in
        # production) but never refuse.
        TOKEN_MIN_AGE="0",
        RATE_SIGN_PER_MINUTE=str(10**9),
        RATE_CLIENT_PER_MINUTE=str(10**9),
        RATE_NET_PER_MINUTE=str(10**9),  # the aggregate limit (issue 15) would quarantine
        SQLITE_SYNCHRONOUS="full",  # as shipped: acknowledged means on disk
        ACCESS_LOG="0",
        LOG_LEVEL="warning",
    )
    if sealing_key:  # signer data sealed for this public key
        server.env["SEALING_PUBLIC_KEY"] = sealing_key
    if smtp_port is not None:
        server.env.update(
            SMTP_URL=f"smtp://127.0.0.1:{smtp_port}", MAIL_FROM=MAIL_FROM, BASE_URL=server.url
        )
    return server


class Sink:
    """The SMTP sink (`python -m bench.sink`) in a process of its own, with its log and the
    file where it writes what it caught (`mails`)."""

    def __init__(self, folder: Path, name: str) -> None:
        self.port = free_port()
        self.log_path = folder / f"{name}-sink.log"
        self.out = folder / f"{name}-mails.jsonl"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> Sink:
        argv = [
            sys.executable,
            "-m",
            "bench.sink",
            "--port",
            str(self.port),
            "--out",
            str(self.out),
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the SMTP sink exited at start:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the SMTP sink did not start:\n{self.log_tail()}")

    def mails(self, timeout: float = 60.0) -> list[dict[str, Any]]:
        """What the sink caught so far, one dict per mail (see `bench.sink.record`)."""
        from bench import sink

        assert self.process is not None
        self.out.unlink(missing_ok=True)
        self.process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while not self.out.exists():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"the SMTP sink wrote nothing:\n{self.log_tail()}")
            time.sleep(0.05)
        return sink.records(self.out)

    def hold(self) -> None:
        """From now on, greet no new connection (see `bench.sink`)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGUSR2)

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Sink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def prepare(
    database_url: str, confirmation: str = "none", partner: tuple[str, str] | None = None
) -> str:
    """Migrate a fresh database and import the example petition; returns its slug. By default
    its signatures count at once (`confirmation = "none"`), the figure every earlier run
    measured; "email" makes each wait for its confirmation link. `partner`: (code, public
    key) of a partner added to it."""
    petition = dataclasses.replace(load_file(bundle.EXAMPLE_PETITION), confirmation=confirmation)

    async def run() -> None:
        storage = Storage(database_url)
        await storage.connect()
        try:
            await storage.migrate()
            await storage.import_petitions([petition])
            if partner is not None:
                petition_id = await storage.petition_id(petition.slug)
                assert petition_id is not None
                await storage.add_partner(petition_id, partner[0], partner[0].title(), partner[1])
        finally:
            await storage.disconnect()

    asyncio.run(run())
    return petition.slug


def stored_counts(database_url: str, slug: str) -> tuple[int, int]:
    """(the petition's counter total, its number of signature rows), read from the database."""

    async def run() -> tuple[int, int]:
        storage = Storage(database_url)
        await storage.connect()
        try:
            petition_id = await storage.petition_id(slug)
            assert petition_id is not None
            totals = await storage.totals()
            return totals.get(petition_id, 0), await storage.stored_signatures(petition_id)
        finally:
            await storage.disconnect()

    return asyncio.run(run())


def sealed_counts(database_url: str, table: str = "signatures") -> tuple[int, int, int]:
    """(rows of `table` with a clear email, rows with a sealed box, rows with a partner copy)."""

    async def run() -> tuple[int, int, int]:
        storage = Storage(database_url)
        await storage.connect()
        try:
            db = storage.database
            counted = (  # `table` is one of ours, never input
                "SELECT COUNT(*) FILTER (WHERE email <> ''), COUNT(sealed), "
                f"COUNT(partner_sealed) FROM {table}"
            )
            row = await db.fetch_one(counted)
            assert row is not None
            return int(row[0]), int(row[1]), int(row[2])
        finally:
            await storage.disconnect()

    return asyncio.run(run())


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: split after it.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _vm_hwm(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by a process and its live descendants."""
    total = 0.0
    for each in (pid, *_descendants(pid)):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / _TICKS
    return total


def wait_until_quiet(patience: float, threshold: float = 0.25) -> float:
    """Wait (at most `patience` seconds) until the machine's CPU use over one second is under
    `threshold` cores; returns the last one-second reading."""
    deadline = time.monotonic() + patience
    while True:
        before = machine_busy_seconds()
        time.sleep(1.0)
        busy = machine_busy_seconds() - before
        if busy < threshold or time.monotonic() >= deadline:
            return busy


def machine_busy_seconds() -> float:
    """CPU time all processes of the machine have used since boot (from /proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _TICKS


_TICKS = os.sysconf("SC_CLK_TCK")


def email_hash_key(secret: str) -> str:
    """The EMAIL_HASH_KEY our server is given in a run (at least 32 characters)."""
    return secret * 2
