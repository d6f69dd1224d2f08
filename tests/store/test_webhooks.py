"""Webhooks in the store, on both engines, delivered by the job under a manual clock to a real
HTTP receiver on 127.0.0.1 that verifies every delivery with the `standardwebhooks` library:
events are written in the causing transaction and arrive as the contract says; a receiver down
or answering 500 for hours gets every event once back, each with its one `webhook-id`; 410
disables; a redirect and a private address are refused; a partner endpoint never hears of a
non-consenting signer and an owner endpoint never gets the personal fields of a signer who did
not tick the organiser's box; sealed fields open with a plain PyNaCl SealedBox; OSDI bodies and
headers; a rotation signs with both secrets; milestones fire once; a failed event is kept for
a week without personal data, redelivered from the dashboard, then purged."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import datetime
import json
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import nacl.public
import pytest
from standardwebhooks.webhooks import Webhook

from server.domain import abuse, links, sealing
from server.domain import webhooks as wh
from server.domain.abuse import Selection
from server.domain.links import Link
from server.domain.signatures import Consent, NewSignature, seal_group
from server.domain.validation import validate_signer
from server.store import (
    confirmations,
    events,
    moderation,
    outbox,
    retention,
    webhook_job,
    webhooks,
)
from server.store.clock import ManualClock
from server.store.storage import Storage
from server.store.writer import create_writer
from tests.support import petitions
from tests.support.receiver import Receiver, receiving

T = float(int(time.time()))  # the manual clock starts at real time: receivers check timestamps


def later() -> ManualClock:
    """A manual clock a minute past the real time: rows written at real time by a withdrawal,
    a closing or a test event are due on it."""
    return ManualClock(time.time() + 60)


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


async def opened(url: str, confirmation: str = "none") -> tuple[Storage, int]:
    storage = Storage(url)
    await storage.connect()
    await storage.migrate()
    await storage.import_petitions([petitions.example(confirmation)])
    pid = await storage.petition_id(petitions.example().slug)
    assert pid is not None
    return storage, pid


async def hook(
    storage: Storage, pid: int, receiver: Receiver, path: str = "/hook", **options: Any
) -> tuple[int, str]:
    """An endpoint on the receiver (loopback: allowed here), its secret given to it."""
    options = {"allow_http": True, "allow_private": True, "url": receiver.url(path), **options}
    new_id, secret = await webhooks.add(storage, petition_id=pid, now=T, **options)
    receiver.secrets.append(secret)
    return new_id, secret


def signature(
    pid: int, email: str, name: str = "Ann Lee", *, organiser: bool = True,
    partner: tuple[int, str] | None = None, consent_partner: bool = False,
    confirm: bool = False, targets: tuple[wh.Target, ...] = (), to_target: bool = False,
) -> NewSignature:  # fmt: skip
    fields = {"name": name, "email": email, "country": "KZ", "consent_organiser": organiser,
              "consent_partner": consent_partner, "consent_name_to_target": to_target}  # fmt: skip
    return NewSignature(
        petition_id=pid, partner_id=partner[0] if partner else None, unknown_partner=None,
        nonce=links.new_ref(), nonce_expires_at=2_000_000_000,
        signer=validate_signer(fields, country="optional"), lang="en",
        consent=Consent("en", "I agree"), ref=links.new_ref(), withdraw=Link.new(),
        confirm=Link.new() if confirm else None, confirm_lifetime=7 * 86_400,
        petition_slug=petitions.example().slug, partner_code=partner[1] if partner else None,
        webhooks=targets,
    )  # fmt: skip


async def targets(storage: Storage, pid: int) -> tuple[wh.Target, ...]:
    """The endpoints as the registry hands them to signatures."""
    return (await events.all_targets(storage.database)).get(pid, ())


async def sign(
    storage: Storage, *batch: NewSignature, at: float = T, owner_key: str | None = None
) -> None:
    def prepare(group: Any, now: int) -> Any:
        assert owner_key is not None
        return seal_group(group, now, owner_key=owner_key)

    writer = create_writer(storage, lambda: at, prepare if owner_key else None)
    await writer.start()
    try:
        await asyncio.gather(*(writer.submit(s) for s in batch))
    finally:
        await writer.close()


@contextlib.asynccontextmanager
async def delivering(
    storage: Storage, clock: ManualClock, job: webhook_job.WebhookJob | None = None
) -> AsyncIterator[None]:
    stopping = asyncio.Event()
    task = asyncio.create_task(
        webhook_job.deliver(storage, clock, job or webhook_job.WebhookJob(), stopping)
    )
    try:
        yield
    finally:
        stopping.set()
        await asyncio.wait_for(task, 20)


async def until(clock: ManualClock, done: Callable[[], bool], step: float, limit: int) -> int:
    """Move the clock by `step` until `done()`, letting the job's real I/O run in between;
    returns the steps taken."""
    for i in range(limit):
        for _ in range(50):
            if done():
                return i
            await asyncio.sleep(0.01)
            if clock.sleeping:
                break
        if done():
            return i
        await clock.advance(step)
    raise AssertionError("not done in time")


async def waiting_rows(storage: Storage) -> list[dict[str, Any]]:
    rows = await storage.database.fetch_all(
        "SELECT payload FROM outbox WHERE topic = 'webhook' ORDER BY id"
    )
    return [json.loads(r[0]) for r in rows]


def test_a_counted_signature_arrives_verified_as_the_contract_says(database_url: str) -> None:
    async def check() -> None:
        storage, pid = await opened(database_url)
        clock = ManualClock(T)
        with receiving() as receiver:
            endpoint_id, _ = await hook(storage, pid, receiver)
            s = signature(pid, "ann@example.org", targets=await targets(storage, pid),
                          to_target=True)  # fmt: skip
            await sign(storage, s)
            # Written with the signature, before any delivery.
            (row,) = await waiting_rows(storage)
            assert row["type"] == wh.COUNTED and row["endpoint_id"] == endpoint_id
            async with delivering(storage, clock):
                (got,) = await asyncio.to_thread(receiver.wait, 1)
            assert got.verified and got.headers["content-type"] == "application/json"
            assert got.id == row["event_id"] and got.headers["webhook-sequence"] == "1"
            body = got.json
            assert set(body) == {"type", "timestamp", "sequence", "data"}
            assert body["type"] == "signature.counted" and body["timestamp"] == wh.iso(T)
            assert body["data"] == {
                "signature_id": s.ref, "petition": s.petition_slug, "partner_code": None,
                "signed_at": wh.iso(T), "confirmed_at": None, "name": "Ann Lee",
                "email": "ann@example.org", "country": "KZ", "lang": "en",
                "consent_organiser": True, "consent_partner": False,
                "consent_name_to_target": True,
                "consent_version": s.consent.version, "consent_text": "I agree",
            }  # fmt: skip
            # Delivered: only its metadata stays.
            assert await waiting_rows(storage) == []
            activity = await webhooks.activity(storage, endpoint_id)
            assert [(d.event_id, d.status, d.attempts) for d in activity.delivered] == [
                (got.id, 204, 1)
            ]
        await storage.disconnect()

    run(check())


def test_confirmation_withdrawal_milestones_and_closing_are_announced(database_url: str) -> None:
    async def check() -> None:
        storage, pid = await opened(database_url, "email")
        await storage.set_petition_goal(pid, 4)
        clock = later()
        with receiving() as receiver:
            await hook(storage, pid, receiver)
            found = await targets(storage, pid)
            ss = [signature(pid, f"s{i}@example.org", confirm=True, targets=found)
                  for i in range(2)]  # fmt: skip
            await sign(storage, *ss)
            assert await waiting_rows(storage) == []  # pending: nothing counts yet
            for s in ss:
                assert s.confirm is not None
                await confirmations.confirm(storage, s.confirm.digest, int(T) + 60)
            assert ss[0].withdraw is not None
            async with delivering(storage, clock):
                await asyncio.to_thread(receiver.wait, 4)  # counted twice, two milestones
                await confirmations.withdraw(storage, ss[0].withdraw.digest)
                await storage.set_petition_status(pid, "closed")
                await until(clock, lambda: len(receiver.accepted()) >= 6, 5, 20)
                got = receiver.accepted()
        kinds = sorted((r.json["type"], r.json["data"].get("milestone")) for r in got)
        assert kinds == [
            ("petition.closed", None), ("petition.milestone", 25), ("petition.milestone", 50),
            ("signature.counted", None), ("signature.counted", None),
            ("signature.withdrawn", None),
        ]  # fmt: skip
        assert all(r.verified for r in got)
        # Per-endpoint sequence numbers, each once.
        assert sorted(int(r.headers["webhook-sequence"]) for r in got) == list(range(1, 7))
        counted = next(r.json["data"] for r in got if r.json["type"] == "signature.counted"
                       and r.json["data"]["signature_id"] == ss[0].ref)  # fmt: skip
        assert counted["signed_at"] == wh.iso(T) and counted["confirmed_at"] == wh.iso(T + 60)
        (withdrawn,) = [r.json["data"] for r in got if r.json["type"] == "signature.withdrawn"]
        assert withdrawn == {"signature_id": ss[0].ref, "petition": ss[0].petition_slug,
                             "partner_code": None, "reason": "withdrawn"}  # fmt: skip
        (half,) = [r.json["data"] for r in got if r.json["data"].get("milestone") == 50]
        assert half == {"petition": ss[0].petition_slug, "signatures": 2, "goal": 4,
                        "milestone": 50}  # fmt: skip
        await storage.disconnect()

    run(check())


def test_an_endpoint_down_for_hours_gets_every_event_once_back(database_url: str) -> None:
    async def check() -> None:
        storage, pid = await opened(database_url)
        clock = ManualClock(T)
        with receiving() as receiver:
            await hook(storage, pid, receiver)
            found = await targets(storage, pid)
            await sign(storage, *(signature(pid, f"d{i}@example.org", targets=found)
                                  for i in range(3)))  # fmt: skip
            down_until = T + 5 * 3600
            receiver.answer = lambda _: 500 if clock.now() < down_until else 200
            # The job's wall clock (`webhook-timestamp`) moves a second per reading, so no two
            # attempts can share a time by chance; it stays within the receivers' 5 minutes.
            handed: list[int] = []
            start = int(time.time())

            def wall() -> float:
                handed.append(start + len(handed))
                return float(handed[-1])

            async with delivering(storage, clock, webhook_job.WebhookJob(wall=wall)):
                steps = await until(clock, lambda: len(receiver.accepted()) >= 3, 300, 200)
            assert steps >= 5 * 3600 / 300  # hours of manual time, seconds of real time
            refused = [r for r in receiver.received if r.status == 500]
            assert len(refused) >= 3 * 5  # tried again and again, with backoff
            ok = receiver.accepted()
            assert len(ok) == 3 and all(r.verified for r in receiver.received)
            # Every attempt carried the wall time read for it, each reading used once, and was
            # signed anew for it (the reference library's signature for that timestamp).
            stamps = [int(r.headers["webhook-timestamp"]) for r in receiver.received]
            assert sorted(stamps) == handed
            (secret,) = receiver.secrets
            for r in receiver.received:
                at = datetime.datetime.fromtimestamp(
                    int(r.headers["webhook-timestamp"]), datetime.UTC
                )
                assert r.headers["webhook-signature"] == Webhook(secret).sign(
                    r.id, at, r.body.decode()
                )
            # Each event's attempts: one webhook-id, one body, a new timestamp each.
            for r in ok:
                tries = [x for x in receiver.received if x.id == r.id]
                assert len({x.headers["webhook-timestamp"] for x in tries}) == len(tries) > 5
                assert {x.body for x in tries} == {r.body}
            assert {r.id for r in receiver.received} == {r.id for r in ok}
            assert await waiting_rows(storage) == []
        await storage.disconnect()

    run(check())


def test_a_slow_receiver_is_cut_off_and_its_event_tried_again(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An attempt is cut off after `ATTEMPT_TIMEOUT` (15 s; a fraction of a second here), and
    the event is tried again under its `webhook-id` until a fast answer delivers it."""
    monkeypatch.setattr(webhook_job, "ATTEMPT_TIMEOUT", 0.3)

    async def check() -> None:
        storage, pid = await opened(database_url)
        clock = ManualClock(T)
        with receiving() as receiver:
            endpoint_id, _ = await hook(storage, pid, receiver)
            await sign(
                storage, signature(pid, "slow@example.org", targets=await targets(storage, pid))
            )
            slow = [True]

            def answer(_: Any) -> int:
                if slow:
                    slow.pop()
                    time.sleep(1.0)  # past the attempt's time: the job has hung up
                return 204

            receiver.answer = answer
            async with delivering(storage, clock):
                for _ in range(100):  # the backoff passes on the manual clock
                    activity = await webhooks.activity(storage, endpoint_id)
                    if activity.delivered:
                        break
                    if clock.sleeping:
                        await clock.advance(10)
                    await asyncio.sleep(0.05)
            # The slow answer's record is made once its handler wakes.
            await asyncio.to_thread(receiver.wait, 2, accepted=False)
            assert [(d.status, d.attempts) for d in activity.delivered] == [(204, 2)]
            assert len({r.id for r in receiver.received}) == 1
            assert all(r.verified for r in receiver.received)
        await storage.disconnect()

    run(check())


def test_a_day_of_failures_gives_up_keeps_it_a_week_without_personal_data_then_purges(
    database_url: str,
) -> None:
    async def check() -> None:
        storage, pid = await opened(database_url)
        clock = ManualClock(T)
        with receiving() as receiver:
            endpoint_id, _ = await hook(storage, pid, receiver)
            receiver.answer = lambda _: 503
            await sign(
                storage, signature(pid, "f@example.org", targets=await targets(storage, pid))
            )
            async with delivering(storage, clock):
                await until(clock, lambda: clock.now() >= T + 86_400 + 7200,
                            1800, 100)  # fmt: skip
                await asyncio.sleep(0.2)
            activity = await webhooks.activity(storage, endpoint_id)
            (failed,) = activity.waiting
            assert failed.failed_at is not None and failed.last_error in ("http_503", "expired")
            (kept,) = await waiting_rows(storage)
            assert "email" not in kept["data"] and "name" not in kept["data"]
            assert kept["data"]["signature_id"] and kept["stripped"] is True
            # The dashboard's button: again, with its id, once the receiver is back.
            receiver.answer = lambda _: 200
            assert await webhooks.redeliver(storage, endpoint_id, failed.row_id, clock.now())
            async with delivering(storage, clock):
                await until(clock, lambda: len(receiver.accepted()) == 1, 5, 20)
            assert receiver.accepted()[0].id == failed.event_id
            # A failure a week old is purged.
            await storage.database.execute(
                "UPDATE outbox SET failed_at = :t, payload = payload WHERE topic = 'webhook'",
                {"t": int(T)},
            )
            receiver.answer = lambda _: 500
            await sign(
                storage, signature(pid, "g@example.org", targets=await targets(storage, pid))
            )
            await storage.database.execute(
                "UPDATE outbox SET failed_at = :t, available_at = :never WHERE topic = 'webhook'",
                {"t": int(T), "never": 2**62},
            )
            await webhooks.purge(storage, T + 7 * 86_400 + 1, webhook_job.FAILED_KEPT)
            assert await waiting_rows(storage) == []
        await storage.disconnect()

    run(check())


def test_gone_disables_and_a_redirect_is_a_failure_not_followed(database_url: str) -> None:
    async def check() -> None:
        storage, pid = await opened(database_url)
        clock = ManualClock(T)
        with receiving() as receiver:
            gone_id, _ = await hook(storage, pid, receiver, "/gone")
            moved_id, _ = await hook(storage, pid, receiver, "/moved")
            receiver.answer = lambda r: 410 if r.path == "/gone" else 302
            await sign(
                storage, signature(pid, "r@example.org", targets=await targets(storage, pid))
            )
            async with delivering(storage, clock):
                await until(clock, lambda: len(receiver.received) >= 3, 30, 50)
            gone = await webhooks.endpoint(storage, gone_id)
            assert gone is not None and gone.disabled_at is not None
            assert gone.disabled_reason == "gone"
            assert [r.path for r in receiver.received if r.path == "/gone"] == ["/gone"]
            # The redirect's target was never asked: only /moved, again and again.
            assert {r.path for r in receiver.received} == {"/gone", "/moved"}
            moved = await webhooks.activity(storage, moved_id)
            assert moved.waiting[0].last_error == "redirect_302" and not moved.delivered
        await storage.disconnect()

    run(check())


def test_a_private_address_is_refused_after_resolution_with_the_rule(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def check() -> None:
        storage, pid = await opened(database_url)
        clock = ManualClock(T)
        with receiving() as receiver:
            # A public-looking name that resolves to loopback: refused after resolution.
            endpoint_id, _ = await webhooks.add(
                storage, petition_id=pid, partner_id=None, allow_http=True,
                url=f"http://crm.example.org:{receiver.port}/hook", now=T,
            )  # fmt: skip

            async def rebinding(host: str, port: int) -> list[str]:
                return ["127.0.0.1"]

            await sign(
                storage, signature(pid, "p@example.org", targets=await targets(storage, pid))
            )
            async with delivering(storage, clock, webhook_job.WebhookJob(resolver=rebinding)):
                await until(clock, lambda: clock.now() >= T + 60, 10, 20)
            assert receiver.received == []
            activity = await webhooks.activity(storage, endpoint_id)
            assert activity.waiting[0].last_error == "private_address"
        await storage.disconnect()

    with caplog.at_level("WARNING", "petition_widget.webhooks"):
        run(check())
    assert any("127.0.0.1, a loopback address" in m and "--allow-private" in m
               for m in caplog.messages)  # fmt: skip


def test_who_gets_personal_data(database_url: str) -> None:
    async def check() -> None:
        storage, pid = await opened(database_url)
        await storage.set_petition_goal(pid, 8)  # 4 signatures: 25 % and 50 %
        partner = await storage.add_partner(pid, "ngo", "NGO")
        other = await storage.add_partner(pid, "other", "Other")
        clock = later()
        with receiving() as receiver:
            await hook(storage, pid, receiver, "/owner")
            await hook(storage, pid, receiver, "/ngo", partner_id=partner.id)
            found = await targets(storage, pid)
            ngo = (partner.id, "ngo")
            batch = [
                signature(pid, "both@example.org", "Both", partner=ngo, consent_partner=True,
                          targets=found),
                signature(pid, "ngo-only@example.org", "NgoOnly", organiser=False, partner=ngo,
                          consent_partner=True, targets=found),
                signature(pid, "counted@example.org", "Counted", organiser=False, partner=ngo,
                          targets=found),
                signature(pid, "other@example.org", "Other", partner=(other.id, "other"),
                          consent_partner=True, targets=found),
            ]  # fmt: skip
            await sign(storage, *batch)
            assert batch[2].withdraw is not None and batch[1].withdraw is not None
            await confirmations.withdraw(storage, batch[2].withdraw.digest)
            async with delivering(storage, clock):
                # Withdrawn before its delivery: its counted event went with it. The owner: 3
                # counted, 1 withdrawn, 2 milestones; the partner: 2 counted, 2 milestones.
                await asyncio.to_thread(receiver.wait, 6 + 4)
                await asyncio.sleep(0.3)
                assert len(receiver.received) == 10
                # The partner's own consenting signer withdraws, after her delivery.
                await confirmations.withdraw(storage, batch[1].withdraw.digest)
                await until(clock, lambda: len(receiver.accepted()) >= 12, 5, 20)
                await asyncio.sleep(0.3)
            got = receiver.received
            assert len(got) == 12

        def of(path: str, type_: str) -> list[dict[str, Any]]:
            return [r.json["data"] for r in got if r.path == path and r.json["type"] == type_]

        owner = of("/owner", wh.COUNTED)
        assert {d.get("name") for d in owner} == {"Both", "Other", None}  # ticked the box
        for d in owner:
            if d.get("name") is None:
                assert "email" not in d and "name" not in d
        assert sorted(d["reason"] for d in of("/owner", wh.WITHDRAWN)) == ["withdrawn"] * 2
        # The partner's endpoint: only its signers who ticked its box, with their data.
        ngo_counted = of("/ngo", wh.COUNTED)
        assert sorted(d["name"] for d in ngo_counted) == ["Both", "NgoOnly"]
        assert all(d["partner_code"] == "ngo" for d in ngo_counted)
        # ... her withdrawal (no personal data in it), and the milestones, counts only.
        assert of("/ngo", wh.WITHDRAWN) == [
            {"signature_id": batch[1].ref, "petition": batch[1].petition_slug,
             "partner_code": "ngo", "reason": "withdrawn"},
        ]  # fmt: skip
        milestones = sorted(of("/ngo", wh.MILESTONE), key=lambda d: d["milestone"])
        assert milestones == sorted(of("/owner", wh.MILESTONE), key=lambda d: d["milestone"])
        assert milestones == [
            {"petition": batch[0].petition_slug, "signatures": 4, "goal": 8, "milestone": m}
            for m in (25, 50)
        ]
        assert {r.json["type"] for r in got if r.path == "/ngo"} == {
            wh.COUNTED, wh.WITHDRAWN, wh.MILESTONE,
        }  # fmt: skip
        for r in got:
            if r.path == "/ngo":
                assert "Counted" not in r.body.decode() and "Other" not in r.body.decode()
        await storage.disconnect()

    run(check())


def test_sealed_fields_open_with_a_plain_sealed_box_and_nothing_clear_is_kept(
    database_url: str,
) -> None:
    async def check() -> None:
        storage, pid = await opened(database_url, "email")
        owner_public, _ = sealing.new_key_pair()
        crm_secret = nacl.public.PrivateKey.generate()
        crm_public = base64.b64encode(bytes(crm_secret.public_key)).decode()
        clock = later()
        with receiving() as receiver:
            await hook(storage, pid, receiver, "/keyed", public_key=crm_public)
            await hook(storage, pid, receiver, "/bare")
            s = signature(pid, "sealed@example.org", "Sealed Signer", confirm=True,
                          targets=await targets(storage, pid))  # fmt: skip
            await sign(storage, s, owner_key=owner_public)
            assert s.confirm is not None
            await confirmations.confirm(storage, s.confirm.digest, int(T) + 30)
            rows = await storage.database.fetch_all(
                "SELECT payload FROM outbox WHERE topic = 'webhook'"
            )
            for row in rows:
                assert "sealed@example.org" not in row[0] and "Sealed Signer" not in row[0]
            async with delivering(storage, clock):
                got = await asyncio.to_thread(receiver.wait, 2)
        keyed = next(r.json["data"] for r in got if r.path == "/keyed")
        bare = next(r.json["data"] for r in got if r.path == "/bare")
        assert "name" not in keyed and "email" not in keyed
        opened_box = json.loads(
            nacl.public.SealedBox(crm_secret).decrypt(base64.b64decode(keyed["sealed"]))
        )
        assert (opened_box["name"], opened_box["email"]) == ("Sealed Signer", "sealed@example.org")
        assert "sealed" not in bare and "name" not in bare and "email" not in bare
        assert bare["signature_id"] == s.ref
        await storage.disconnect()

    run(check())


def test_osdi_body_and_headers(database_url: str) -> None:
    async def check() -> None:
        storage, pid = await opened(database_url)
        partner = await storage.add_partner(pid, "ngo", "NGO")
        clock = ManualClock(T)
        with receiving() as receiver:
            await hook(storage, pid, receiver, format=wh.OSDI, osdi_token="tok-123")
            found = await targets(storage, pid)
            await sign(
                storage,
                signature(pid, "maria@example.org", "Maria  de la Cruz",
                          partner=(partner.id, "ngo"), targets=found),
                signature(pid, "no@example.org", "Not Named", organiser=False, targets=found),
            )  # fmt: skip
            await storage.set_petition_status(pid, "closed")  # not for OSDI
            async with delivering(storage, clock):
                (got,) = await asyncio.to_thread(receiver.wait, 1)
                await asyncio.sleep(0.3)
            assert len(receiver.received) == 1
        assert got.verified
        assert got.headers["content-type"] == "application/hal+json"
        assert got.headers["osdi-api-token"] == "tok-123"
        assert got.json == {
            "person": {
                "given_name": "Maria de la", "family_name": "Cruz",
                "email_addresses": [{"address": "maria@example.org", "primary": True}],
                "postal_addresses": [{"country": "KZ"}],
            },
            "action_date": wh.iso(T),
            "referrer_data": {"source": "ngo"},
        }  # fmt: skip
        await storage.disconnect()

    run(check())


def test_an_osdi_endpoint_gets_only_counted_signatures_never_a_test_event(
    database_url: str,
) -> None:
    """The contract: `--format osdi` endpoints get only `signature.counted`. A `webhook.test`
    goes to a standard endpoint; for an OSDI one none is queued (a CRM would take it for a
    person), and one an older version queued is failed unsent, as are milestones."""

    async def check() -> None:
        storage, pid = await opened(database_url)
        await storage.set_petition_goal(pid, 4)
        clock = later()
        with receiving() as receiver:
            standard_id, _ = await hook(storage, pid, receiver, "/standard")
            osdi_id, _ = await hook(storage, pid, receiver, "/osdi", format=wh.OSDI)
            await sign(
                storage, signature(pid, "o@example.org", targets=await targets(storage, pid))
            )
            assert await webhooks.send_test(storage, standard_id, T)
            assert not await webhooks.send_test(storage, osdi_id, T)
            assert sorted((r["endpoint_id"], r["type"]) for r in await waiting_rows(storage)) == [
                (standard_id, wh.MILESTONE), (standard_id, wh.COUNTED), (standard_id, wh.TEST),
                (osdi_id, wh.COUNTED),
            ]  # fmt: skip
            # A test event queued for it before this rule: never sent.
            osdi = await webhooks.endpoint(storage, osdi_id)
            assert osdi is not None
            async with storage.write() as tx:
                await events._queue(tx, osdi.target, wh.TEST, {"endpoint_id": osdi_id}, T)
            async with delivering(storage, clock):
                got = await asyncio.to_thread(receiver.wait, 4)
                for _ in range(100):
                    left = (await webhooks.activity(storage, osdi_id)).waiting
                    if left and left[0].failed_at is not None:
                        break
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.3)
            assert sorted(r.json["type"] for r in got if r.path == "/standard") == [
                wh.MILESTONE, wh.COUNTED, wh.TEST,
            ]  # fmt: skip
            (record,) = [r for r in receiver.received if r.path == "/osdi"]
            assert "person" in record.json and "type" not in record.json
            (unsent,) = left
            assert unsent.type == wh.TEST and unsent.last_error == "not_for_osdi"
        await storage.disconnect()

    run(check())


def test_a_redelivered_osdi_record_without_its_address_fails_and_stops_nothing(
    database_url: str,
) -> None:
    """An OSDI event failed for good lost its clear name and address: redelivered, it can be
    no record, so it fails again at once, and the job goes on delivering the rest (it used to
    raise on the missing address, over and over, and its batch was never written back)."""

    async def check() -> None:
        storage, pid = await opened(database_url)
        clock = ManualClock(T)
        with receiving() as receiver:
            endpoint_id, _ = await hook(storage, pid, receiver, format=wh.OSDI)
            await sign(
                storage, signature(pid, "lost@example.org", targets=await targets(storage, pid))
            )
            (row,) = await outbox.claim(storage, events.TOPIC, 10, 60, T)
            await webhook_job.settle(storage, [webhook_job._Result(row, give_up=True)], T)
            assert "lost@example.org" not in json.dumps(await waiting_rows(storage))
            assert await webhooks.redeliver(storage, endpoint_id, row.id, T)
            await sign(
                storage, signature(pid, "next@example.org", targets=await targets(storage, pid))
            )
            async with delivering(storage, clock):
                (got,) = await asyncio.to_thread(receiver.wait, 1)
                for _ in range(100):
                    activity = await webhooks.activity(storage, endpoint_id)
                    if activity.waiting and activity.waiting[0].failed_at is not None:
                        break
                    await asyncio.sleep(0.05)
            assert got.json["person"]["email_addresses"][0]["address"] == "next@example.org"
            (failed,) = activity.waiting
            assert failed.row_id == row.id and failed.last_error == "no_personal_data"
        await storage.disconnect()

    run(check())


def test_a_rotation_signs_with_both_secrets_for_a_day(database_url: str) -> None:
    async def check() -> None:
        storage, pid = await opened(database_url)
        clock = ManualClock(T)
        with receiving() as receiver:
            endpoint_id, old = await hook(storage, pid, receiver)
            new = await webhooks.rotate(storage, endpoint_id, time.time())
            assert new is not None and new != old
            receiver.secrets = [old, new]
            await sign(
                storage, signature(pid, "rot@example.org", targets=await targets(storage, pid))
            )
            async with delivering(storage, clock):
                (got,) = await asyncio.to_thread(receiver.wait, 1)
            assert got.verified_by == [0, 1]
            assert len(got.headers["webhook-signature"].split(" ")) == 2
            # A day on, the old one no longer signs.
            late = await webhooks.endpoint(storage, endpoint_id)
            assert late is not None and late.secrets(time.time() + 86_401) == [new]
        await storage.disconnect()

    run(check())


def test_huge_and_endless_answers_are_cut_off(database_url: str) -> None:
    async def check() -> None:
        storage, pid = await opened(database_url)
        clock = ManualClock(T)
        with receiving() as receiver:
            huge_id, _ = await hook(storage, pid, receiver, "/huge")
            endless_id, _ = await hook(storage, pid, receiver, "/endless")
            receiver.answer = lambda r: r.path.strip("/")
            await sign(
                storage, signature(pid, "h@example.org", targets=await targets(storage, pid))
            )
            async with delivering(storage, clock):
                await until(clock, lambda: len(receiver.received) >= 2, 5, 20)
                await asyncio.sleep(0.5)
            huge = await webhooks.activity(storage, huge_id)
            endless = await webhooks.activity(storage, endless_id)
            assert [d.status for d in huge.delivered] == [200]  # its status was enough
            assert endless.waiting[0].last_error == "http_500"
        await storage.disconnect()

    run(check())


def test_retention_announces_withdrawal_and_test_events_go_to_one_endpoint(
    database_url: str,
) -> None:
    async def check() -> None:
        storage, pid = await opened(database_url)
        clock = later()
        with receiving() as receiver:
            endpoint_id, _ = await hook(storage, pid, receiver)
            s = signature(pid, "ret@example.org", targets=await targets(storage, pid))
            await sign(storage, s)
            await retention.retain(storage, pid, T + 10)
            assert await webhooks.send_test(storage, endpoint_id, T + 20)
            async with delivering(storage, clock):
                got = await asyncio.to_thread(receiver.wait, 2)
        # Retained before its delivery: its counted event, holding its data, went too.
        by_type = {r.json["type"]: r.json["data"] for r in got}
        assert "signature.counted" not in by_type
        assert by_type["signature.withdrawn"]["reason"] == "retention"
        assert by_type["signature.withdrawn"]["signature_id"] == s.ref
        assert by_type["webhook.test"]["endpoint_id"] == endpoint_id
        await storage.disconnect()

    run(check())


def test_counts_are_exact_and_failed_events_are_never_pushed_off_the_dashboard(
    database_url: str,
) -> None:
    """More than the dashboard shows: `waiting_counts` counts every row (the CLI's list once
    read at most 1000), the dashboard's 20 retrying events leave room for the 20 latest failed
    ones, and `redeliver_failed` (`webhooks redeliver`) sends every failed one again."""

    async def check() -> None:
        storage, pid = await opened(database_url)
        endpoint_id, _ = await webhooks.add(
            storage, petition_id=pid, url="http://127.0.0.1:9/hook", allow_http=True,
            allow_private=True, now=T,
        )  # fmt: skip
        other_id, _ = await webhooks.add(
            storage, petition_id=pid, url="http://127.0.0.1:9/other", allow_http=True,
            allow_private=True, now=T,
        )  # fmt: skip
        assert await webhooks.send_test(storage, other_id, T)
        async with storage.write() as tx:
            for _ in range(1030):
                assert await events.test_event(tx, endpoint_id, T)
            # The 30 oldest failed for good; the 1,000 newest are still being tried.
            await tx.execute(
                "UPDATE outbox SET failed_at = :t, available_at = :never WHERE id IN "
                "(SELECT id FROM outbox WHERE endpoint_id = :e ORDER BY id LIMIT 30)",
                {"t": int(T), "never": outbox.NEVER, "e": endpoint_id},
            )
        assert await webhooks.waiting_counts(storage) == {endpoint_id: (1000, 30),
                                                          other_id: (1, 0)}  # fmt: skip
        shown = (await webhooks.activity(storage, endpoint_id)).waiting
        assert len(shown) == 2 * webhooks.RECENT
        assert sum(1 for w in shown if w.failed_at is not None) == webhooks.RECENT
        assert [w.row_id for w in shown] == sorted((w.row_id for w in shown), reverse=True)
        assert await webhooks.redeliver_failed(storage, other_id, T) == 0
        assert await webhooks.redeliver_failed(storage, endpoint_id, T + 5) == 30
        assert await webhooks.waiting_counts(storage) == {endpoint_id: (1030, 0),
                                                          other_id: (1, 0)}  # fmt: skip
        await storage.disconnect()

    run(check())


def test_removing_an_endpoint_takes_its_events(database_url: str) -> None:
    async def check() -> None:
        storage, pid = await opened(database_url)
        with receiving() as receiver:
            endpoint_id, _ = await hook(storage, pid, receiver)
            await sign(
                storage, signature(pid, "x@example.org", targets=await targets(storage, pid))
            )
            assert len(await waiting_rows(storage)) == 1
            assert await webhooks.remove(storage, endpoint_id)
            assert await waiting_rows(storage) == []
            assert await targets(storage, pid) == ()
        await storage.disconnect()

    run(check())


def test_a_none_petition_announces_to_the_endpoints_of_its_transaction_not_the_registrys(
    database_url: str,
) -> None:
    """The signing plan reads the enabled endpoints in its own transaction: an endpoint added
    a moment ago, which the registry (reloaded every `COUNT_REFRESH`) does not list yet,
    hears of the signatures counted with it, milestones too; one disabled a moment ago, which
    the registry still lists, hears of nothing more."""

    async def check() -> None:
        storage, pid = await opened(database_url)
        await storage.set_petition_goal(pid, 4)
        stale = await targets(storage, pid)
        assert stale == ()  # what the registry handed these signatures
        new_id, _ = await webhooks.add(
            storage, petition_id=pid, url="http://127.0.0.1:9/new", allow_http=True,
            allow_private=True, now=T,
        )  # fmt: skip
        first = signature(pid, "first@example.org", targets=stale)
        await sign(storage, first)
        rows = await waiting_rows(storage)
        assert [(r["endpoint_id"], r["type"]) for r in rows] == [
            (new_id, wh.COUNTED), (new_id, wh.MILESTONE),
        ]  # fmt: skip
        assert rows[0]["data"]["signature_id"] == first.ref
        assert rows[0]["data"]["email"] == "first@example.org"
        # Disabled now; the registry still lists it for a second.
        listed = await targets(storage, pid)
        async with storage.write() as tx:
            await webhooks.disable(tx, new_id, T, "gone")
        await sign(storage, signature(pid, "second@example.org", targets=listed))
        assert len(await waiting_rows(storage)) == 2
        await storage.disconnect()

    run(check())


def test_no_endpoint_no_rows(database_url: str) -> None:
    async def check() -> None:
        storage, pid = await opened(database_url, "email")
        s = signature(pid, "n@example.org", confirm=True)
        await sign(storage, s)
        assert s.confirm is not None
        await confirmations.confirm(storage, s.confirm.digest, int(T))
        assert await waiting_rows(storage) == []
        await storage.disconnect()

    run(check())


def _certificate(folder: Path, name: str) -> tuple[str, str]:
    """A self-signed certificate for `name` (openssl, as Debian ships it)."""
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "2", "-subj", f"/CN={name}", "-addext",
         f"subjectAltName=DNS:{name}", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return str(cert), str(key)


def test_https_connects_to_the_checked_address_and_verifies_the_name(
    database_url: str, tmp_path: Path
) -> None:
    """The job connects to the address it resolved and checked, and TLS still verifies the
    certificate against the host name: a certificate for another name fails."""

    async def check() -> None:
        storage, pid = await opened(database_url)
        clock = ManualClock(T)
        good = _certificate(tmp_path, "crm.test")
        trust = ssl.create_default_context(cafile=good[0])

        async def resolver(host: str, port: int) -> list[str]:
            assert host in ("crm.test", "other.test")
            return ["127.0.0.1"]

        job = webhook_job.WebhookJob(resolver=resolver, tls=trust)
        with receiving(tls=good) as receiver:
            await hook(storage, pid, receiver, url=receiver.url(host="crm.test", scheme="https"))
            other_id, _ = await webhooks.add(
                storage, petition_id=pid, allow_private=True, now=T,
                url=receiver.url(host="other.test", scheme="https"),
            )  # fmt: skip
            await sign(
                storage, signature(pid, "tls@example.org", targets=await targets(storage, pid))
            )
            async with delivering(storage, clock, job):
                (got,) = await asyncio.to_thread(receiver.wait, 1)
                await until(clock, lambda: clock.now() >= T + 30, 10, 10)
            assert got.verified and got.headers["host"] == f"crm.test:{receiver.port}"
            other = await webhooks.activity(storage, other_id)
            assert other.waiting[0].last_error == "SSLCertVerificationError"
            assert len(receiver.received) == 1
        await storage.disconnect()

    run(check())


def test_with_sealing_a_none_petition_keeps_nothing_in_clear(database_url: str) -> None:
    async def check() -> None:
        storage, pid = await opened(database_url)
        owner_public, _ = sealing.new_key_pair()
        crm_public, crm_secret = sealing.new_key_pair()
        clock = ManualClock(T)
        with receiving() as receiver:
            await hook(storage, pid, receiver, public_key=crm_public)
            s = signature(pid, "plain@example.org", "Plain Signer",
                          targets=await targets(storage, pid))  # fmt: skip
            await sign(storage, s, owner_key=owner_public)
            (row,) = await waiting_rows(storage)
            assert "plain@example.org" not in json.dumps(row) and "Plain" not in json.dumps(row)
            async with delivering(storage, clock):
                (got,) = await asyncio.to_thread(receiver.wait, 1)
        data = got.json["data"]
        assert sealing.open_box(data["sealed"], sealing.parse_secret_key(crm_secret))["email"] == (
            "plain@example.org"
        )
        assert data["signed_at"] == wh.iso(sealing.hour(int(T)))  # the hour, in clear
        await storage.disconnect()

    run(check())


def test_the_functions_a_quarantine_calls_announce_invalidation_and_restoration(
    database_url: str,
) -> None:
    """`signatures_withdrawn(..., "invalidated", ...)` and `signature_counted`, called inside
    the caller's own transaction, as invalidate and restore will: rolled back, nothing."""

    async def check() -> None:
        storage, pid = await opened(database_url)
        with receiving() as receiver:
            await hook(storage, pid, receiver)
            s = signature(pid, "q@example.org", targets=await targets(storage, pid))
            await sign(storage, s)
            row_id = int(
                await storage.database.fetch_val(
                    "SELECT id FROM signatures WHERE ref = :r", {"r": s.ref}
                )
            )
            with contextlib.suppress(RuntimeError):
                async with storage.write() as tx:
                    await events.signatures_withdrawn(tx, [row_id], "invalidated", T)
                    raise RuntimeError("rolled back")
            assert len(await waiting_rows(storage)) == 1  # only the counted event
            async with storage.write() as tx:
                assert await events.signatures_withdrawn(tx, [row_id], "invalidated", T) == 1
                assert await events.signature_counted(tx, row_id, T) == 1
            kinds = [(r["type"], r["data"].get("reason"), r["sequence"])
                     for r in await waiting_rows(storage)]  # fmt: skip
            # The first counted event, never delivered, went with the invalidation: it held
            # the signer's data.
            assert kinds == [
                ("signature.withdrawn", "invalidated", 2),
                ("signature.counted", None, 3),
            ]
            assert {r["data"]["signature_id"] for r in await waiting_rows(storage)} == {s.ref}
        await storage.disconnect()

    run(check())


def test_a_quarantined_signature_is_announced_when_restored_and_invalidated_after(
    database_url: str,
) -> None:
    """The quarantine's bulk actions (`moderation.apply`) through the real events: a
    quarantined signature counts nowhere and is no event; restored, it is `signature.counted`;
    invalidated, `signature.withdrawn` with reason `invalidated`."""

    async def check() -> None:
        storage, pid = await opened(database_url)
        with receiving() as receiver:
            await hook(storage, pid, receiver)
            held = dataclasses.replace(
                signature(pid, "held@example.org", targets=await targets(storage, pid)),
                status=abuse.QUARANTINED,
            )
            await sign(storage, held)
            assert await waiting_rows(storage) == []
            everyone = Selection(quarantined_only=True)
            restored = await moderation.apply(storage, pid, everyone, abuse.RESTORE, int(T))
            assert (restored.signatures, restored.count) == (1, 1)
            every = Selection(since=0)
            await moderation.apply(storage, pid, every, abuse.INVALIDATE, int(T) + 1)
            kinds = [(r["type"], r["data"].get("reason")) for r in await waiting_rows(storage)]
            # The counted event, not delivered yet, went with the invalidation (it held data).
            assert kinds == [("signature.withdrawn", "invalidated")]
            assert {r["sequence"] for r in await waiting_rows(storage)} == {2}
        await storage.disconnect()

    run(check())


def test_a_quarantined_confirmation_is_no_event_until_restored(database_url: str) -> None:
    """The confirm path: a quarantined submission, confirmed, is recorded and counts nowhere,
    so no endpoint hears of it; restored, it is `signature.counted` with its confirmation."""

    async def check() -> None:
        storage, pid = await opened(database_url, "email")
        with receiving() as receiver:
            await hook(storage, pid, receiver)
            held = dataclasses.replace(
                signature(pid, "wait@example.org", confirm=True,
                          targets=await targets(storage, pid)),
                status=abuse.QUARANTINED,
            )  # fmt: skip
            await sign(storage, held)
            assert held.confirm is not None
            await confirmations.confirm(storage, held.confirm.digest, int(T) + 60)
            assert (
                await storage.database.fetch_val(
                    "SELECT status FROM signatures WHERE ref = :r", {"r": held.ref}
                )
                == abuse.QUARANTINED
            )
            assert await waiting_rows(storage) == []
            everyone = Selection(quarantined_only=True)
            await moderation.apply(storage, pid, everyone, abuse.RESTORE, int(T) + 120)
            (row,) = await waiting_rows(storage)
            assert row["type"] == wh.COUNTED and row["data"]["signature_id"] == held.ref
            assert row["data"]["confirmed_at"] == wh.iso(T + 60)
        await storage.disconnect()

    run(check())


def test_retention_keeps_no_sealed_box_and_announces_only_what_counted(
    database_url: str,
) -> None:
    """Retention deletes the boxes sealed for endpoints too (they hold a name and an address),
    and says `retention` only of signatures that counted: a quarantined one was never
    announced."""

    async def check() -> None:
        storage, pid = await opened(database_url)
        owner_public, _ = sealing.new_key_pair()
        crm_public, _ = sealing.new_key_pair()
        with receiving() as receiver:
            await hook(storage, pid, receiver, public_key=crm_public)
            found = await targets(storage, pid)
            counted = signature(pid, "kept@example.org", targets=found)
            held = dataclasses.replace(
                signature(pid, "held@example.org", targets=found), status=abuse.QUARANTINED
            )
            await sign(storage, counted, held, owner_key=owner_public)
            boxes = "SELECT COUNT(*) FROM signatures WHERE webhook_sealed IS NOT NULL"
            assert await storage.database.fetch_val(boxes) == 2
            await retention.retain(storage, pid, T + 10)
            assert await storage.database.fetch_val(boxes) == 0
            withdrawn = [r["data"]["signature_id"] for r in await waiting_rows(storage)
                         if r["type"] == wh.WITHDRAWN]  # fmt: skip
            assert withdrawn == [counted.ref]


SEALED_KEYS = {"endpoint_id", "event_id", "type", "sequence", "box", "signature"}


async def _settled(storage: Storage, attempted: int) -> bool:
    """Whether every webhook row was tried at least `attempted` times and is back, unclaimed."""
    left = await storage.database.fetch_val(
        "SELECT COUNT(*) FROM outbox WHERE topic = 'webhook' "
        "AND (attempts < :n OR claimed_until IS NOT NULL)",
        {"n": attempted},
    )
    return int(left) == 0


@pytest.mark.parametrize("confirmation", ["none", "email"])
def test_sealed_rows_of_a_down_endpoint_keep_no_ref_nor_exact_time_and_all_arrive_back(
    database_url: str, confirmation: str
) -> None:
    """On a sealed server, events waiting for an endpoint that is down hold no `signature_id`,
    no exact time (columns nor payload), no name, email or country in clear: the event is in its
    box. A withdrawal still finds and deletes its undelivered counted event (by its keyed tag),
    and once the endpoint is back every event arrives, verified, as the contract says."""

    async def check() -> None:
        hasher = sealing.EmailHasher(b"k" * 32)
        storage = Storage(database_url, sealed_events=hasher)
        await storage.connect()
        await storage.migrate()
        await storage.import_petitions([petitions.example(confirmation)])
        pid = await storage.petition_id(petitions.example().slug)
        assert pid is not None
        owner_public, _ = sealing.new_key_pair()
        at = T - T % 3600 + 1234  # an exact time that is not an hour's
        clock = ManualClock(at + 60)
        with receiving() as receiver:
            await hook(storage, pid, receiver)
            found = await targets(storage, pid)
            ss = [signature(pid, f"seal{i}@example.org", f"Sealname{i} Lee",
                            confirm=confirmation == "email", targets=found)
                  for i in range(3)]  # fmt: skip
            await sign(storage, *ss, at=at, owner_key=owner_public)
            for s in ss:
                if s.confirm is not None:
                    await confirmations.confirm(storage, s.confirm.digest, int(at) + 30)
            receiver.answer = lambda _: 503
            job = webhook_job.WebhookJob(open_event=hasher.open_mail)
            async with delivering(storage, clock, job):
                await until(clock, lambda: len(receiver.received) >= 3, 1, 30)
                for _ in range(500):
                    if await _settled(storage, 1):
                        break
                    await asyncio.sleep(0.02)
            rows = await storage.database.fetch_all(
                "SELECT payload, created_at, available_at, claimed_until, failed_at, attempts "
                "FROM outbox WHERE topic = 'webhook' ORDER BY id"
            )
            assert len(rows) >= 3 and all(int(r[5]) >= 1 for r in rows)  # tried, and refused
            exact = {str(int(at)), str(int(at) + 30), wh.iso(int(at)), wh.iso(int(at) + 30)}
            for row in rows:
                payload, created, available, claimed, failed = (row[i] for i in range(5))
                assert int(created) % 3600 == 0 and int(available) % 3600 == 0
                assert claimed is None and failed is None
                assert set(json.loads(payload)) <= SEALED_KEYS
                # (Quoted as JSON would hold them: a short word may turn up inside base64.)
                for secret in ("signature_id", "timestamp", "signed_at", '"KZ"', "Sealname",
                               "seal0@", *exact, *(s.ref for s in ss)):  # fmt: skip
                    assert secret not in payload
            # The box is the event, opened as the job opens it.
            event = webhook_job.opened(job, json.loads(rows[0][0]))
            assert event is not None and event["data"]["signature_id"] in {s.ref for s in ss}

            assert ss[0].withdraw is not None
            await confirmations.withdraw(storage, ss[0].withdraw.digest)
            left = [hasher.open_mail(p["box"]) for p in await waiting_rows(storage)]
            events_left = [json.loads(o["event"]) for o in left if o is not None]
            assert len(events_left) == len(left)
            counted = [e["data"]["signature_id"] for e in events_left if e["type"] == wh.COUNTED]
            assert sorted(counted) == sorted(s.ref for s in ss[1:])  # its counted event went
            expected = len(events_left)

            receiver.answer = lambda _: 204
            async with delivering(storage, clock, job):
                await until(clock, lambda: len(receiver.accepted()) >= expected, 600, 30)
            got = receiver.accepted()
            assert len(got) == expected and all(r.verified for r in got)
            assert {r.id for r in got} == {e["event_id"] for e in events_left}
            bodies = {r.json["data"].get("signature_id"): r.json for r in got
                      if r.json["type"] == wh.COUNTED}  # fmt: skip
            assert set(bodies) == {s.ref for s in ss[1:]}
            for body in bodies.values():
                assert set(body) == {"type", "timestamp", "sequence", "data"}
                # Exact inside the delivered event: it travels, it is not kept.
                moment = int(at) if confirmation == "none" else int(at) + 30
                assert body["timestamp"] == wh.iso(moment) and body["data"]["country"] == "KZ"
                assert body["data"]["signed_at"] == wh.iso(sealing.hour(int(at)))
            (withdrawn,) = [r.json["data"] for r in got if r.json["type"] == wh.WITHDRAWN]
            assert withdrawn["signature_id"] == ss[0].ref
            assert await waiting_rows(storage) == []
            times = await storage.database.fetch_all(
                "SELECT created_at, delivered_at FROM webhook_deliveries"
            )
            assert len(times) == expected
            assert all(int(t[0]) % 3600 == 0 and int(t[1]) % 3600 == 0 for t in times)
        await storage.disconnect()

    run(check())
