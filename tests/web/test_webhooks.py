"""Webhooks through a live server, on both engines: a signature made through the API reaches a
CRM stand-in on 127.0.0.1, verified with `standardwebhooks`; the dashboard shows each
endpoint's deliveries and failures, and its redeliver button needs the CSRF token."""

from __future__ import annotations

import asyncio
import html
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx

from server.domain import access_keys, sealing
from server.domain import webhooks as wh
from server.store import webhooks
from server.store.storage import Storage
from tests.support import live
from tests.support.receiver import receiving
from tests.web.test_admin import SLUG, in_storage, new_key, sign

ADMIN = f"/admin/petitions/{SLUG}"


def test_a_signature_reaches_the_crm_and_the_dashboard_redelivers_a_failure(
    server: live.LiveServer, client: httpx.Client
) -> None:
    url = server.env["DATABASE_URL"]
    with receiving() as receiver:

        async def add(storage: Storage) -> tuple[int, access_keys.Key]:
            pid = await storage.petition_id(SLUG)
            assert pid is not None
            endpoint_id, secret = await webhooks.add(
                storage, petition_id=pid, url=receiver.url(), allow_http=True,
                allow_private=True, now=time.time(),
            )  # fmt: skip
            receiver.secrets.append(secret)
            return endpoint_id, await new_key(storage, access_keys.OWNER)

        endpoint_id, key = in_storage(url, add)
        deadline = time.monotonic() + 10
        signed: set[str] = set()
        # The registry reloads the endpoints within its refresh; until then a signature may
        # go unannounced (the documented limit), so sign until one is announced.
        while not receiver.received:
            assert time.monotonic() < deadline
            signed.add(sign(client, SLUG, consent_organiser=True)["email"])
            time.sleep(0.3)
        got = receiver.wait(1)
        assert all(r.verified for r in got)
        assert got[-1].json["type"] == "signature.counted"
        assert {r.json["data"].get("email") for r in got} <= signed

        # Its delivery's record is written once the batch settles, just after the answer.
        deadline = time.monotonic() + 10
        while not in_storage(url, lambda s: webhooks.activity(s, endpoint_id)).delivered:
            assert time.monotonic() < deadline
            time.sleep(0.05)

        # A failed event: the dashboard lists it with a button, which needs the CSRF token.
        async def fail(storage: Storage) -> int:
            await storage.database.execute(
                "UPDATE outbox SET failed_at = 1, available_at = :never WHERE endpoint_id = :e",
                {"never": 2**62, "e": endpoint_id},
            )
            row = await storage.database.fetch_val(
                "SELECT id FROM outbox WHERE endpoint_id = :e", {"e": endpoint_id}
            )
            return int(row) if row is not None else 0

        # Answered 500, the event waits for its retry: marked failed, as a day of them would.
        receiver.answer = lambda _: 500
        before = len(receiver.received)
        assert in_storage(url, lambda s: webhooks.send_test(s, endpoint_id, time.time()))
        receiver.wait(before + 1, accepted=False)
        row_id = in_storage(url, fail)
        assert row_id
        receiver.answer = lambda _: 204
        with httpx.Client(base_url=server.base_url, timeout=30) as owner:
            assert owner.post("/admin/login", data={"key": key.text}).status_code == 303
            page = owner.get(ADMIN)
            assert page.status_code == 200
            assert "Recent deliveries" in page.text and "Deliver again" in page.text
            assert receiver.url() in html.unescape(page.text)
            action = f"{ADMIN}/webhooks/{endpoint_id}/redeliver"
            refused = owner.post(action, data={"event": str(row_id), "csrf": "wrong"})
            assert refused.status_code == 403
            start = len(receiver.received)
            token = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert token
            done = owner.post(action, data={"event": str(row_id), "csrf": token[1]})
            assert done.status_code == 303 and "done=redelivered" in done.headers["location"]
            again = owner.post(action, data={"event": str(row_id), "csrf": token[1]})
            assert "error=not-redelivered" in again.headers["location"]
        receiver.wait(start + 1, accepted=False)
        assert all(r.verified for r in receiver.received)


def test_a_sealed_server_keeps_waiting_events_in_their_box_and_delivers_them_opened(
    database_url: str, tmp_path: Path
) -> None:
    """Through `serve` with `SEALING_PUBLIC_KEY`: an event waiting for an endpoint that is down
    keeps no `signature_id`, no exact time and no country in clear, the dashboard still lists
    it, and once the endpoint is back (and the hour its retry waits for has come) it arrives
    opened, verified, with its exact timestamp."""
    live.prepare(database_url)
    public, _ = sealing.new_key_pair()
    with receiving() as receiver:
        receiver.answer = lambda _: 503

        async def add(storage: Storage) -> tuple[int, access_keys.Key]:
            pid = await storage.petition_id(SLUG)
            assert pid is not None
            endpoint_id, secret = await webhooks.add(
                storage, petition_id=pid, url=receiver.url(), allow_http=True,
                allow_private=True, now=time.time(),
            )  # fmt: skip
            receiver.secrets.append(secret)
            return endpoint_id, await new_key(storage, access_keys.OWNER)

        _, key = in_storage(database_url, add)
        server = live.LiveServer(database_url, tmp_path, SEALING_PUBLIC_KEY=public)
        with server, httpx.Client(base_url=server.base_url, timeout=30) as client:
            before = int(time.time())
            sign(client, SLUG, consent_organiser=True)
            after = int(time.time()) + 1
            receiver.wait(1, accepted=False)

            async def settled(storage: Storage) -> list[list[Any]]:
                for _ in range(200):
                    rows = await storage.database.fetch_all(
                        "SELECT payload, created_at, available_at, claimed_until, attempts "
                        "FROM outbox WHERE topic = 'webhook'"
                    )
                    if rows and all(r[3] is None and int(r[4]) >= 1 for r in rows):
                        return [[r[i] for i in range(5)] for r in rows]
                    await asyncio.sleep(0.05)
                raise AssertionError("the refused attempt was not written back")

            ((payload, created, available, _, _),) = in_storage(database_url, settled)
            assert int(created) % 3600 == 0 and int(available) % 3600 == 0
            kept = json.loads(payload)
            assert set(kept) == {"endpoint_id", "event_id", "type", "sequence", "box", "signature"}
            assert kept["type"] == "signature.counted"
            for word in ("signature_id", "timestamp", "signed_at", '"country"'):
                assert word not in payload
            with httpx.Client(base_url=server.base_url, timeout=30) as owner:
                assert owner.post("/admin/login", data={"key": key.text}).status_code == 303
                page = owner.get(ADMIN)
                assert page.status_code == 200  # it lists the waiting event, and why it waits
                assert "<code>signature.counted</code>" in page.text and "http_503" in page.text

            receiver.answer = lambda _: 204
            in_storage(  # the hour its retry waits for has come
                database_url,
                lambda s: s.database.execute(
                    "UPDATE outbox SET available_at = 0 WHERE topic = 'webhook'"
                ),
            )
            (got,) = receiver.wait(1)
        assert got.verified and got.id == kept["event_id"]
        body = got.json
        assert body["type"] == "signature.counted" and body["data"]["signature_id"]
        # Exact, as it travels (it is not kept).
        assert body["timestamp"] in {wh.iso(t) for t in range(before, after + 1)}
        assert body["data"]["signed_at"] == wh.iso(int(created))  # the hour
