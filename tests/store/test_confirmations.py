"""Confirmation by email in the store, on both engines: a submission waits with its links and
its mail in one transaction, counts only once confirmed, and the confirmed one wins over a
squatter's; withdrawal removes the signature and its count; the mail quota holds; unconfirmed
submissions expire."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
from collections.abc import Coroutine
from typing import Any

from server.domain import export, links
from server.domain.links import Link
from server.domain.signatures import Consent, NewSignature
from server.domain.validation import validate_signer
from server.store import confirmations
from server.store.signatures import MAILS_PER_SIGNER
from server.store.storage import Storage
from server.store.writer import create_writer
from tests.support import petitions

T = 1_700_000_000
LIFETIME = 7 * 86_400
EXAMPLE = petitions.example(confirmation="email")


def submission(
    petition_id: int, email: str, name: str = "Test Signer", *, nonce: str | None = None
) -> NewSignature:
    return NewSignature(
        petition_id=petition_id,
        partner_id=None,
        unknown_partner=None,
        nonce=nonce or secrets.token_urlsafe(12),
        nonce_expires_at=2_000_000_000,
        signer=validate_signer({"name": name, "email": email, "consent_organiser": True}),
        lang="en",
        consent=Consent("en", "consent text"),
        ref=links.new_ref(),
        withdraw=Link.new(),
        confirm=Link.new(),
        confirm_lifetime=LIFETIME,
    )


async def opened(url: str) -> tuple[Storage, int]:
    storage = Storage(url)
    await storage.connect()
    await storage.migrate()
    await storage.import_petitions([EXAMPLE])
    pid = await storage.petition_id(EXAMPLE.slug)
    assert pid is not None
    return storage, pid


async def sign(storage: Storage, *batch: NewSignature, at: float = T) -> list[int | None]:
    writer = create_writer(storage, lambda: at)
    await writer.start()
    try:
        return list(await asyncio.gather(*(writer.submit(s) for s in batch)))
    finally:
        await writer.close()


async def mails(storage: Storage) -> list[dict[str, Any]]:
    rows = await storage.database.fetch_all(
        "SELECT payload FROM outbox WHERE topic = 'mail' ORDER BY id"
    )
    return [json.loads(r[0]) for r in rows]


async def counted(storage: Storage, pid: int) -> tuple[int, list[tuple[str, int, int | None]]]:
    """The petition's count, and its signature rows (name, created_at, signed_at)."""
    total = (await storage.totals()).get(pid, 0)
    rows = await storage.database.fetch_all(
        "SELECT name, created_at, signed_at FROM signatures WHERE petition_id = :p", {"p": pid}
    )
    return total, [(r[0], r[1], r[2]) for r in rows]


async def pending(storage: Storage) -> list[str]:
    rows = await storage.database.fetch_all("SELECT name FROM pending_signatures ORDER BY id")
    return [r[0] for r in rows]


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


def test_a_submission_waits_with_its_mail_and_counts_once_confirmed(database_url: str) -> None:
    async def check() -> None:
        storage, pid = await opened(database_url)
        s = submission(pid, "Ann@example.org", "Ann")
        assert await sign(storage, s) == [0]
        assert await pending(storage) == ["Ann"]
        assert await counted(storage, pid) == (0, [])
        (mail,) = await mails(storage)
        assert mail == {
            "kind": "confirm", "to": "Ann@example.org", "lang": "en", "petition_id": pid,
            "confirm": s.confirm.token if s.confirm else None, "withdraw": s.withdraw.token
            if s.withdraw else None, "ref": s.ref,
        }  # fmt: skip
        assert s.confirm is not None
        change = await confirmations.confirm(storage, s.confirm.digest, T + 60)
        assert change == confirmations.Change(pid, 1)
        assert await counted(storage, pid) == (1, [("Ann", T + 60, T)])
        assert await pending(storage) == []
        (row,) = [r async for r in storage.export_rows(pid)]
        record = export.record(row, export.OWNER_COLUMNS)
        assert (record["signed_at"], record["confirmed_at"]) == (export.iso(T), export.iso(T + 60))
        # Again: the same success, nothing moves.
        assert await confirmations.confirm(storage, s.confirm.digest, T + 90) == (
            confirmations.Change(pid)
        )
        assert (await counted(storage, pid))[0] == 1
        await storage.disconnect()

    run(check())


def test_the_confirmed_submission_wins_over_a_squatters(database_url: str) -> None:
    async def check() -> None:
        storage, pid = await opened(database_url)
        squatter = submission(pid, "victim@example.org", "Squatter")
        owner = submission(pid, "victim@example.org", "Owner")
        await sign(storage, squatter)
        await sign(storage, owner)
        assert await pending(storage) == ["Squatter", "Owner"]
        assert [m["kind"] for m in await mails(storage)] == ["confirm", "confirm"]
        assert owner.confirm is not None and squatter.confirm is not None
        await confirmations.confirm(storage, owner.confirm.digest, T + 10)
        assert await counted(storage, pid) == (1, [("Owner", T + 10, T)])
        assert await pending(storage) == []  # the squatter's name and consents are gone
        # The squatter's links reached the owner's mailbox too: they show the same success,
        # and confirm nothing more.
        target = await confirmations.find(storage, squatter.confirm.digest, T + 20)
        assert target is not None and target.found == "counted"
        await confirmations.confirm(storage, squatter.confirm.digest, T + 20)
        assert await counted(storage, pid) == (1, [("Owner", T + 10, T)])
        await storage.disconnect()

    run(check())


def test_a_repeat_of_a_confirmed_signer_gets_a_withdrawal_link(database_url: str) -> None:
    async def check() -> None:
        storage, pid = await opened(database_url)
        first = submission(pid, "bo@example.org", "Bo")
        await sign(storage, first)
        assert first.confirm is not None
        await confirmations.confirm(storage, first.confirm.digest, T + 5)
        again = submission(pid, "BO@example.org", "Someone else")
        assert await sign(storage, again) == [0]  # the same answer as a first signature
        assert await pending(storage) == []  # nothing waits: Bo had signed
        last = (await mails(storage))[-1]
        assert last["kind"] == "already_signed" and "confirm" not in last
        assert again.withdraw is not None and last["withdraw"] == again.withdraw.token
        # That link withdraws the signature that counts.
        change = await confirmations.withdraw(storage, again.withdraw.digest)
        assert change == confirmations.Change(pid, 0)
        assert await counted(storage, pid) == (0, [])
        # Repeating it changes nothing.
        assert await confirmations.withdraw(storage, again.withdraw.digest) == (
            confirmations.Change(pid)
        )
        assert (await counted(storage, pid))[0] == 0
        await storage.disconnect()

    run(check())


def test_withdrawing_a_pending_submission_deletes_it(database_url: str) -> None:
    async def check() -> None:
        storage, pid = await opened(database_url)
        s = submission(pid, "cy@example.org", "Cy")
        await sign(storage, s)
        assert s.withdraw is not None and s.confirm is not None
        assert await confirmations.withdraw(storage, s.withdraw.digest) == (
            confirmations.Change(pid)
        )
        assert await pending(storage) == []
        # Its confirmation link now confirms nothing.
        assert await confirmations.confirm(storage, s.confirm.digest, T + 5) == (
            confirmations.Change(pid)
        )
        assert await counted(storage, pid) == (0, [])
        await storage.disconnect()

    run(check())


def test_a_retry_of_the_same_submission_sends_no_second_mail(database_url: str) -> None:
    async def check() -> None:
        storage, pid = await opened(database_url)
        s = submission(pid, "di@example.org", "Di", nonce="same-nonce")
        assert await sign(storage, s) == [0]
        assert await sign(storage, s) == [0]
        assert len(await mails(storage)) == 1
        assert await pending(storage) == ["Di"]
        await storage.disconnect()

    run(check())


def test_an_address_gets_at_most_a_few_mails_per_petition(database_url: str) -> None:
    async def check() -> None:
        storage, pid = await opened(database_url)
        for _ in range(MAILS_PER_SIGNER + 3):
            assert await sign(storage, submission(pid, "flood@example.org")) == [0]
        assert len(await mails(storage)) == MAILS_PER_SIGNER
        # The quotas count a digest of the address, never the address itself.
        for table in ("mail_quota", "mail_budget"):
            rows = await storage.database.fetch_all(f"SELECT * FROM {table}")
            assert rows and "flood" not in repr([tuple(r) for r in rows])
        await storage.disconnect()

    run(check())


def test_unconfirmed_submissions_expire_and_their_links_say_so(database_url: str) -> None:
    async def check() -> None:
        storage, pid = await opened(database_url)
        old = submission(pid, "old@example.org", "Old")
        await sign(storage, old, at=T)
        fresh = submission(pid, "new@example.org", "New")
        await sign(storage, fresh, at=T + LIFETIME)
        assert old.confirm is not None
        target = await confirmations.find(storage, old.confirm.digest, T + LIFETIME + 1)
        assert target is not None and target.expired and target.found == "pending"
        # An expired link confirms nothing.
        assert await confirmations.confirm(storage, old.confirm.digest, T + LIFETIME + 1) is None
        gone = await confirmations.expire_pending(storage, T + LIFETIME + 1, LIFETIME)
        assert gone == 1
        assert await pending(storage) == ["New"]
        await storage.disconnect()

    run(check())


def test_unknown_links_find_nothing(database_url: str) -> None:
    async def check() -> None:
        storage, _ = await opened(database_url)
        digest = Link.new().digest
        assert await confirmations.find(storage, digest, T) is None
        assert await confirmations.confirm(storage, digest, T) is None
        assert await confirmations.withdraw(storage, digest) is None
        await storage.disconnect()

    run(check())


def test_a_submission_whose_mail_is_refused_for_good_is_forgotten_at_once(
    database_url: str,
) -> None:
    async def check() -> None:
        storage, pid = await opened(database_url)
        refused = submission(pid, "zt.refused@example.org", "Refused")
        confirmed = submission(pid, "zt.confirmed@example.org", "Confirmed")
        await sign(storage, refused, confirmed)
        assert refused.confirm and refused.withdraw and confirmed.confirm and confirmed.withdraw
        await confirmations.confirm(storage, confirmed.confirm.digest, T + 5)

        assert await confirmations.forget_unmailable(storage, refused.ref)
        assert await pending(storage) == []  # the name, address and choices are gone
        for link in (refused.confirm, refused.withdraw):
            assert await confirmations.find(storage, link.digest, T + 10) is None
        assert not await confirmations.forget_unmailable(storage, refused.ref)
        # A confirmed signature is never touched, nor are its links.
        assert not await confirmations.forget_unmailable(storage, confirmed.ref)
        assert await counted(storage, pid) == (1, [("Confirmed", T + 5, T)])
        target = await confirmations.find(storage, confirmed.withdraw.digest, T + 10)
        assert target is not None and target.found == "counted"
        await storage.disconnect()

    run(check())


def test_the_name_to_target_choice_follows_the_submission_it_confirms(database_url: str) -> None:
    async def check() -> None:
        storage, pid = await opened(database_url)
        named, quiet = submission(pid, "named@example.org"), submission(pid, "quiet@example.org")
        named = dataclasses.replace(
            named, signer=dataclasses.replace(named.signer, consent_name_to_target=True)
        )
        await sign(storage, named, quiet)
        for s in (named, quiet):
            assert s.confirm is not None
            await confirmations.confirm(storage, s.confirm.digest, T + 60)
        flags = {r.email: r.consent_name_to_target async for r in storage.export_rows(pid)}
        assert flags == {"named@example.org": True, "quiet@example.org": False}
        await storage.disconnect()

    run(check())
