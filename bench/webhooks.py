"""Webhooks under load: events per second one delivery worker sends to a local receiver, and
the outbox's cost on the sign rate beside the same load without endpoints.

    .venv/bin/python -m bench.webhooks [--events N] [--duration S] [--postgres URL]

1. **Delivery.** A fresh database (SQLite, and PostgreSQL with `--postgres`) gets one owner
   endpoint pointing at `bench.receiver` (a process of its own) and `--events` counted
   signatures written by the writer, each with its `signature.counted` event. Then one
   delivery loop (`webhook_job.deliver`, this process, the system clock) empties the outbox;
   events/s is the events divided by the time until the outbox is empty, every event checked
   to have arrived once (distinct `webhook-id`s at the receiver).
2. **Sign cost.** `petition-widget serve` (1 worker) on the example petition, counting at
   once: the sign load (wrk, as `python -m bench`) without any endpoint, then with one owner
   endpoint at the receiver, its job delivering while the load runs. Then the bench waits for
   the outbox to drain and checks the receiver got one event per acknowledged signature.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from bench import bodies, load, servers
from bench.run import SECRET, SIGN_PATH, SLUG, TOKEN_LIFETIME, _postgres_database
from server.domain import links
from server.domain.links import Link
from server.domain.signatures import Consent, NewSignature
from server.domain.validation import validate_signer
from server.store import events, webhook_job, webhooks
from server.store.clock import SystemClock
from server.store.storage import Storage
from server.store.writer import create_writer


@dataclasses.dataclass
class Delivery:
    backend: str
    events: int
    seconds: float
    cpu_self: float  # CPU seconds of this process (the one delivery worker) meanwhile
    cpu_receiver: float
    arrived: int

    @property
    def per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


async def _add_endpoint(url: str, receiver: str) -> None:
    storage = Storage(url)
    await storage.connect()
    try:
        pid = await storage.petition_id(SLUG)
        assert pid is not None
        await webhooks.add(storage, petition_id=pid, url=receiver, allow_http=True,
                           allow_private=True, now=time.time())  # fmt: skip
    finally:
        await storage.disconnect()


async def _waiting(storage: Storage) -> int:
    return int(
        await storage.database.fetch_val(
            "SELECT COUNT(*) FROM outbox WHERE topic = 'webhook' AND failed_at IS NULL"
        )
    )


async def _fill(url: str, n: int) -> None:
    storage = Storage(url)
    await storage.connect()
    try:
        pid = await storage.petition_id(SLUG)
        assert pid is not None
        found = (await events.all_targets(storage.database))[pid]
        writer = create_writer(storage)
        await writer.start()
        batch = []
        for i in range(n):
            signer = validate_signer(
                {"name": f"Bench Signer {i}", "email": f"bench.{i}@example.org",
                 "country": "KZ", "consent_organiser": True}, country="optional",
            )  # fmt: skip
            batch.append(
                NewSignature(
                    petition_id=pid,
                    partner_id=None,
                    unknown_partner=None,
                    nonce=links.new_ref(),
                    nonce_expires_at=2_000_000_000,
                    signer=signer,
                    lang="en",
                    consent=Consent("en", "I agree"),
                    ref=links.new_ref(),
                    withdraw=Link.new(),
                    petition_slug=SLUG,
                    webhooks=found,
                )
            )
        for start in range(0, n, 500):
            await asyncio.gather(*(writer.submit(s) for s in batch[start : start + 500]))
        await writer.close()
    finally:
        await storage.disconnect()


def delivery(backend: str, url: str, receiver: servers.Server, n: int) -> Delivery:
    servers.prepare(url)
    asyncio.run(_add_endpoint(url, receiver.url + "/hook"))
    asyncio.run(_fill(url, n))
    assert receiver.process is not None
    receiver_cpu = servers.cpu_seconds(receiver.process.pid)

    async def run() -> float:
        storage = Storage(url)
        await storage.connect()
        stopping = asyncio.Event()
        try:
            task = asyncio.create_task(
                webhook_job.deliver(storage, SystemClock(), webhook_job.WebhookJob(), stopping)
            )
            started = time.monotonic()
            while await _waiting(storage):
                await asyncio.sleep(0.05)
            seconds = time.monotonic() - started
            stopping.set()
            await task
            return seconds
        finally:
            await storage.disconnect()

    usage = resource.getrusage(resource.RUSAGE_SELF)
    seconds = asyncio.run(run())
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
    counted = _receiver_count(receiver)
    return Delivery(backend, n, seconds, cpu,
                    servers.cpu_seconds(receiver.process.pid) - receiver_cpu, counted)  # fmt: skip


def _receiver_count(receiver: servers.Server) -> int:
    status, _, body = servers.get(receiver.port, "/count")
    assert status == 200
    return int(json.loads(body)["ids"])


def sign_cost(
    url_off: str, url_on: str, receiver: servers.Server, folder: Path, seconds: float
) -> list[str]:
    lines = []
    base = 0.0
    for url, with_endpoint in ((url_off, False), (url_on, True)):
        servers.prepare(url)
        if with_endpoint:
            asyncio.run(_add_endpoint(url, receiver.url + "/hook"))
        body_file = folder / f"bodies-{with_endpoint}.jsonl"
        bodies.write(body_file, int(seconds * 4000), secret=SECRET, slug=SLUG,
                     lifetime=TOKEN_LIFETIME)  # fmt: skip
        before = _receiver_count(receiver)
        log = folder / f"sign-{with_endpoint}.log"
        with servers.our_server(url, 1, SECRET, log) as server:
            assert server.process is not None
            cpu = servers.cpu_seconds(server.process.pid)
            machine = servers.machine_busy_seconds()
            signed = load.sign(server.url, SIGN_PATH, body_file, seconds=seconds,
                               connections=50, threads=1)  # fmt: skip
            used = servers.cpu_seconds(server.process.pid) - cpu
            other = servers.machine_busy_seconds() - machine - used
            drained = time.monotonic()
            if with_endpoint:
                while _receiver_count(receiver) - before < signed.acknowledged:
                    if time.monotonic() - drained > 120:
                        break
                    time.sleep(0.1)
            drain = time.monotonic() - drained
            arrived = _receiver_count(receiver) - before
        rate = signed.acknowledged_per_second
        if not with_endpoint:
            base = rate
        ratio = f"{rate / base:.0%}" if base else ""
        lat = signed.latency_ms
        check = (
            f"{arrived:,} events for {signed.acknowledged:,} signatures"
            f"{f', drained {drain:.1f} s after the load' if with_endpoint else ''}"
        )
        lines.append(
            f"| {'one endpoint' if with_endpoint else 'no endpoint'} | {rate:,.0f} | {ratio} | "
            f"{lat['p50']:.1f} | {lat['p99']:.1f} | {used / signed.seconds:.2f} | "
            f"{max(0.0, other) / signed.seconds:.2f} | {check} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks")
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--postgres", metavar="URL")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as name:
        folder = Path(name)
        port = servers.free_port()
        receiver = servers.Server(
            "receiver", port, [sys.executable, "-m", "bench.receiver", "--port", str(port)],
            {}, folder / "receiver.log",
        )  # fmt: skip
        with receiver:
            results = [delivery("sqlite", f"sqlite:///{folder / 'd.db'}", receiver, args.events)]
            if args.postgres:
                with servers_postgres(args.postgres) as url:
                    results.append(delivery("postgresql", url, receiver, args.events))
            print("| Engine | Events | Seconds | Events/s | Worker CPU cores | "
                  "Receiver CPU cores | Arrived once |")  # fmt: skip
            print("|---|--:|--:|--:|--:|--:|---|")
            for d in results:
                print(
                    f"| {d.backend} | {d.events:,} | {d.seconds:.1f} | {d.per_second:,.0f} | "
                    f"{d.cpu_self / d.seconds:.2f} | {d.cpu_receiver / d.seconds:.2f} | "
                    f"{d.arrived:,} ids |"
                )
            print()
            print("| SQLite, 1 worker | Acknowledged/s | With/without | p50 ms | p99 ms | "
                  "Server CPU cores | Other CPU cores | Events |")  # fmt: skip
            print("|---|--:|--:|--:|--:|--:|--:|---|")
            for line in sign_cost(
                f"sqlite:///{folder / 'off.db'}", f"sqlite:///{folder / 'on.db'}", receiver,
                folder, args.duration,
            ):  # fmt: skip
                print(line)
    return 0


def servers_postgres(url: str) -> contextlib.AbstractContextManager[str]:
    return _postgres_database(url)


if __name__ == "__main__":
    sys.exit(main())
