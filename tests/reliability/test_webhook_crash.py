"""kill -9 of our server in the middle of webhook deliveries, on SQLite and PostgreSQL: after a
restart every acknowledged signature reaches the CRM stand-in (verified with
`standardwebhooks`), and an event whose delivery was cut off arrives again with the same
`webhook-id`, which is how a receiver recognises the duplicate."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from server.store import webhooks
from server.store.storage import Storage
from tests.support import live
from tests.support.load import SignLoad
from tests.support.receiver import Received, receiving


def _add_endpoint(database_url: str, url: str) -> str:
    async def run() -> str:
        storage = Storage(database_url)
        await storage.connect()
        try:
            pid = await storage.petition_id("save-russian-lgbt-network")
            assert pid is not None
            _, secret = await webhooks.add(
                storage, petition_id=pid, url=url, allow_http=True, allow_private=True,
                now=time.time(),
            )  # fmt: skip
            return secret
        finally:
            await storage.disconnect()

    return asyncio.run(run())


def _end_leases(database_url: str) -> None:
    """What a minute does to the dead server's leases: they end (no test waits a minute)."""

    async def run() -> None:
        storage = Storage(database_url)
        await storage.connect()
        try:
            await storage.database.execute(
                "UPDATE outbox SET available_at = 0 WHERE topic = 'webhook' "
                "AND claimed_until IS NOT NULL AND failed_at IS NULL"
            )
        finally:
            await storage.disconnect()

    asyncio.run(run())


def test_kill_9_mid_delivery_loses_no_event_and_repeats_carry_the_same_id(
    tmp_path: Path, database_url: str
) -> None:
    live.prepare(database_url)
    release = threading.Event()
    cut_off: list[str] = []  # ids of deliveries the receiver held when the server died

    def answer(r: Received) -> int:
        if not release.is_set():
            cut_off.append(r.id)
            release.wait(20)  # held: the server dies while waiting for this answer
            return 503  # too late: nobody reads it
        return 204

    with receiving() as receiver:
        receiver.secrets.append(_add_endpoint(database_url, receiver.url()))
        receiver.answer = answer
        server = live.LiveServer(database_url, tmp_path).start()
        load = SignLoad(server.base_url, concurrency=8, extra={"consent_organiser": True}).start()
        try:
            load.wait_for(40)
            load.stop()  # a bounded backlog: the load is not what this test measures
            deadline = time.monotonic() + 20
            while not cut_off and time.monotonic() < deadline:
                time.sleep(0.02)
            assert cut_off, "no delivery was in flight"
            server.kill()
        finally:
            load.stop()
            server.kill()
        release.set()
        acknowledged = set(load.acked)
        _end_leases(database_url)
        with live.LiveServer(database_url, tmp_path):
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                emails = {r.json["data"]["email"] for r in receiver.accepted()}
                if acknowledged <= emails:
                    break
                time.sleep(0.1)
        accepted = receiver.accepted()
        assert all(r.verified for r in receiver.received)
        emails = {r.json["data"]["email"] for r in accepted}
        assert acknowledged <= emails, len(acknowledged - emails)
        # The cut-off deliveries came again, each under its first attempt's id.
        again = {r.id: r.json for r in accepted}
        for msg_id in cut_off:
            assert msg_id in again
        first = {r.id: r.json for r in receiver.received if r.id in cut_off}
        assert all(first[i] == again[i] for i in cut_off)
