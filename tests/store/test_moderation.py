"""Quarantine, invalidation and restoration in the store, on both engines: a quarantined
signature is stored, mailed and confirmed like any other and counts nowhere; bulk actions by
partner, time window, email domain and state move every counter by exactly what changed (in
batches), reach submissions still waiting, say so to the events hook, and a dry run changes
nothing; the trending rows."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import Coroutine
from typing import Any

import pytest

from server.domain import abuse, links, sealing
from server.domain.abuse import Selection
from server.domain.links import Link
from server.domain.signatures import Consent, NewSignature
from server.domain.validation import validate_signer
from server.store import confirmations, events, moderation, totals
from server.store.registry import Registry
from server.store.storage import Storage
from server.store.writer import create_writer
from tests.support import petitions

T = 1_700_000_000
HASHER = sealing.EmailHasher(b"m" * 32)


def signature(
    petition_id: int,
    email: str,
    *,
    partner_id: int | None = None,
    status: str = abuse.COUNTED,
    confirm: bool = False,
) -> NewSignature:
    return NewSignature(
        petition_id=petition_id,
        partner_id=partner_id,
        unknown_partner=None,
        nonce=secrets.token_urlsafe(12),
        nonce_expires_at=2_000_000_000,
        signer=validate_signer({"name": "Test Signer", "email": email}),
        lang="en",
        consent=Consent("en", "consent text"),
        ref=links.new_ref(),
        withdraw=Link.new(),
        confirm=Link.new() if confirm else None,
        confirm_lifetime=604_800,
        email_domain=HASHER.domain_key(email.rpartition("@")[2]),
        status=status,
    )


async def opened(url: str, confirmation: str = "none") -> tuple[Storage, int, int, int]:
    storage = Storage(url)
    await storage.connect()
    await storage.migrate()
    example = petitions.example(confirmation=confirmation)
    await storage.import_petitions([example])
    pid = await storage.petition_id(example.slug)
    assert pid is not None
    a = await storage.add_partner(pid, "alpha", "Alpha")
    b = await storage.add_partner(pid, "beta", "Beta")
    return storage, pid, a.id, b.id


async def sign(storage: Storage, *batch: NewSignature, at: float = T) -> list[int | None]:
    writer = create_writer(storage, lambda: at)
    await writer.start()
    try:
        return list(await asyncio.gather(*(writer.submit(s) for s in batch)))
    finally:
        await writer.close()


async def exact(storage: Storage, pid: int) -> dict[int | None, int]:
    """The counters per partner, checked against a real count of the signatures that count."""
    rows = await storage.database.fetch_all(
        "SELECT partner_id, COUNT(*) FROM signatures WHERE petition_id = :p "
        "AND status = 'counted' GROUP BY partner_id",
        {"p": pid},
    )
    real = {r[0]: int(r[1]) for r in rows}
    counters = {k: v for k, v in (await storage.partner_totals(pid)).items() if v}
    assert counters == real
    assert (await storage.totals()).get(pid, 0) == sum(real.values())
    return counters


async def statuses(storage: Storage, table: str = "signatures") -> dict[str, int]:
    rows = await storage.database.fetch_all(f"SELECT status, COUNT(*) FROM {table} GROUP BY status")
    return {r[0]: int(r[1]) for r in rows}


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


def test_a_quarantined_signature_is_stored_and_counts_nowhere(database_url: str) -> None:
    async def check() -> None:
        storage, pid, alpha, _ = await opened(database_url)
        held = signature(pid, "held@example.org", partner_id=alpha, status=abuse.QUARANTINED)
        await sign(storage, signature(pid, "one@example.org", partner_id=alpha), held)
        assert await exact(storage, pid) == {alpha: 1}
        assert await statuses(storage) == {"counted": 1, "quarantined": 1}
        assert await storage.signatures_between(pid, 0, 2 * T) == 1  # charts: counted only
        assert len([r async for r in storage.export_rows(pid)]) == 1
        # Its withdrawal link works, and takes nothing off a counter it was never on (this
        # lowered the count before).
        assert held.withdraw is not None
        assert await confirmations.withdraw(storage, held.withdraw.digest) == (
            confirmations.Change(pid)
        )
        assert await exact(storage, pid) == {alpha: 1}
        await storage.disconnect()

    run(check())


def test_totals_by_country_and_language_hold_only_counted_signatures(database_url: str) -> None:
    """Regression: the public and dashboard breakdowns (and the delivery pack's countries)
    grouped every stored row, so quarantined and invalidated signatures showed in them."""

    async def check() -> None:
        storage, pid, alpha, _ = await opened(database_url)

        def from_(email: str, country: str, status: str = abuse.COUNTED) -> NewSignature:
            signer = validate_signer({"name": "Test Signer", "email": email, "country": country})
            s = signature(pid, email, partner_id=alpha, status=status)
            return dataclasses.replace(s, signer=signer)

        await sign(
            storage,
            from_("one@example.org", "DE"),
            from_("held@example.org", "FR", abuse.QUARANTINED),
            from_("bot@spam.example", "FR"),
        )
        spam = Selection(domain_key=HASHER.domain_key("spam.example"))
        assert (await moderation.apply(storage, pid, spam, abuse.INVALIDATE, T)).signatures == 1
        assert await statuses(storage) == {"counted": 1, "quarantined": 1, "invalidated": 1}
        for partner in (None, alpha):
            assert await totals.by_country(storage, pid, partner) == {"DE": 1}
            assert await totals.by_language(storage, pid, partner) == {"en": 1}
        await storage.disconnect()

    run(check())


def test_a_quarantined_submission_is_mailed_and_its_confirmation_recorded(
    database_url: str,
) -> None:
    async def check() -> None:
        storage, pid, alpha, _ = await opened(database_url, "email")
        normal = signature(pid, "a@example.org", partner_id=alpha, confirm=True)
        held = signature(pid, "b@example.org", partner_id=alpha, confirm=True,
                         status=abuse.QUARANTINED)  # fmt: skip
        assert await sign(storage, normal, held) == [0, 0]
        kinds = await storage.database.fetch_all("SELECT payload FROM outbox ORDER BY id")
        assert len(kinds) == 2  # the same mail for both
        for s in (normal, held):
            assert s.confirm is not None
            assert await confirmations.confirm(storage, s.confirm.digest, T + 60) is not None
        assert await exact(storage, pid) == {alpha: 1}
        assert await statuses(storage) == {"counted": 1, "quarantined": 1}
        # Restored, it counts.
        done = await moderation.apply(
            storage, pid, Selection(quarantined_only=True), abuse.RESTORE, T + 90
        )
        assert (done.signatures, done.count) == (1, 2)
        assert await exact(storage, pid) == {alpha: 2}
        await storage.disconnect()

    run(check())


def test_invalidate_and_restore_recount_exactly(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(moderation, "BATCH", 3)  # several batches, and a partial last one
    said: list[tuple[str, int, str | None]] = []

    # The webhooks' events, as the bulk action calls them (in its transactions).
    async def counted(tx: Any, row_id: int, now: float) -> int:
        said.append(("counted", row_id, None))
        return 0

    async def withdrawn(tx: Any, row_ids: Any, reason: str, now: float) -> int:
        said.extend(("withdrawn", row_id, reason) for row_id in row_ids)
        return 0

    monkeypatch.setattr(events, "signature_counted", counted)
    monkeypatch.setattr(events, "signatures_withdrawn", withdrawn)

    async def check() -> None:
        storage, pid, alpha, beta = await opened(database_url)
        await sign(storage, *(signature(pid, f"a{i}@spam.example", partner_id=alpha)
                              for i in range(7)), at=T)  # fmt: skip
        await sign(storage, *(signature(pid, f"b{i}@example.org", partner_id=beta)
                              for i in range(4)), at=T + 3600)  # fmt: skip
        await sign(storage, signature(pid, "c@spam.example"), at=T + 7200)
        await sign(storage, signature(pid, "q@spam.example", partner_id=beta,
                                      status=abuse.QUARANTINED), at=T + 7200)  # fmt: skip
        assert await exact(storage, pid) == {alpha: 7, beta: 4, None: 1}
        spam = Selection(domain_key=HASHER.domain_key("spam.example"))
        # A dry run says how many, and changes nothing.
        assert await moderation.preview(storage, pid, spam, abuse.INVALIDATE) == (
            moderation.Tally(9, 0)
        )
        assert await exact(storage, pid) == {alpha: 7, beta: 4, None: 1}
        revision = await storage.content_revision()
        done = await moderation.apply(storage, pid, spam, abuse.INVALIDATE, T + 9000)
        assert (done.signatures, done.count, done.went_down) == (9, 4, True)
        assert await exact(storage, pid) == {beta: 4}
        assert await storage.content_revision() > revision  # every registry takes the totals
        assert await statuses(storage) == {"counted": 4, "invalidated": 9}
        # Only the 8 that counted were withdrawn; the quarantined one was on no count.
        assert sorted(kind for kind, _, _ in said) == ["withdrawn"] * 8
        assert {reason for _, _, reason in said} == {"invalidated"}
        said.clear()
        # Restore by partner and window: alpha's, within the first hour.
        window = Selection(partner_code="alpha", since=T, until=T + 3600)
        assert (await moderation.preview(storage, pid, window, abuse.RESTORE)).signatures == 7
        done = await moderation.apply(storage, pid, window, abuse.RESTORE, T + 9100)
        assert (done.signatures, done.count) == (7, 11)
        assert await exact(storage, pid) == {alpha: 7, beta: 4}
        assert sorted(kind for kind, _, _ in said) == ["counted"] * 7
        # Restoring only quarantined ones leaves the invalidated alone, and the other way.
        done = await moderation.apply(
            storage, pid, Selection(quarantined_only=True), abuse.RESTORE, T + 9200
        )
        assert done.signatures == 0
        done = await moderation.apply(storage, pid, spam, abuse.RESTORE, T + 9300)
        assert (done.signatures, done.count) == (2, 13)
        assert await exact(storage, pid) == {alpha: 7, beta: 5, None: 1}
        # Again: nothing left to do.
        assert (await moderation.apply(storage, pid, spam, abuse.RESTORE, T)).signatures == 0
        await storage.disconnect()

    run(check())


def test_invalidation_reaches_submissions_that_still_wait(database_url: str) -> None:
    """A flood from a domain its sender owns can confirm: invalidated while it waits, its
    confirmation then counts nothing."""

    async def check() -> None:
        storage, pid, alpha, _ = await opened(database_url, "email")
        waiting = signature(pid, "x@owned.example", partner_id=alpha, confirm=True)
        await sign(storage, waiting)
        owned = Selection(domain_key=HASHER.domain_key("owned.example"))
        assert await moderation.preview(storage, pid, owned, abuse.INVALIDATE) == (
            moderation.Tally(0, 1)
        )
        done = await moderation.apply(storage, pid, owned, abuse.INVALIDATE, T)
        assert (done.signatures, done.pending) == (0, 1)
        assert waiting.confirm is not None
        await confirmations.confirm(storage, waiting.confirm.digest, T + 60)
        assert await exact(storage, pid) == {}
        assert await statuses(storage) == {"invalidated": 1}
        done = await moderation.apply(storage, pid, owned, abuse.RESTORE, T + 90)
        assert (done.signatures, done.count) == (1, 1)
        assert await exact(storage, pid) == {alpha: 1}
        await storage.disconnect()

    run(check())


def test_a_registry_follows_an_invalidation_made_elsewhere(database_url: str) -> None:
    async def check() -> None:
        storage, pid, alpha, _ = await opened(database_url)
        await sign(storage, *(signature(pid, f"r{i}@example.org", partner_id=alpha)
                              for i in range(5)))  # fmt: skip
        registry = Registry(storage, 1.0)
        await registry.refresh()
        entry = registry.entries[petitions.example().slug]
        assert registry.count(entry) == 5
        await moderation.apply(storage, pid, Selection(partner_code="alpha"), abuse.INVALIDATE, T)
        await registry.refresh()
        assert registry.count(registry.entries[entry.slug]) == 0
        await moderation.apply(storage, pid, Selection(partner_code="alpha"), abuse.RESTORE, T)
        await registry.refresh()
        assert registry.count(registry.entries[entry.slug]) == 5
        await storage.disconnect()

    run(check())


def test_quarantine_rows_and_states(database_url: str) -> None:
    async def check() -> None:
        storage, pid, alpha, _ = await opened(database_url)
        held = [signature(pid, f"h{i}@example.org", partner_id=alpha, status=abuse.QUARANTINED)
                for i in range(3)]  # fmt: skip
        await sign(storage, *held, at=T)
        await sign(storage, signature(pid, "n@example.org", status=abuse.QUARANTINED), at=T + 3600)
        rows = await moderation.quarantined(storage, pid, 0)
        hour = T // 3600 * 3600
        assert rows == [
            moderation.QuarantineRow(hour + 3600, None, True, 1),
            moderation.QuarantineRow(hour, "alpha", True, 3),
        ]
        assert await moderation.states(storage, pid) == moderation.States(0, 4, 0, 0)
        await storage.disconnect()

    run(check())


def test_trends_compare_the_last_hour_with_the_same_hour_before(database_url: str) -> None:
    async def check() -> None:
        storage, pid, alpha, beta = await opened(database_url)
        now = T + 8 * 86_400
        # The usual: 2 an hour through alpha on each of the last 7 days, at this hour.
        for day in range(1, 8):
            await sign(storage, *(signature(pid, f"u{day}-{i}@example.org", partner_id=alpha)
                                  for i in range(2)), at=now - day * 86_400 - 60)  # fmt: skip
        # The last hour: 30 through alpha from one domain, 3 through beta.
        await sign(storage, *(signature(pid, f"s{i}@flood.example", partner_id=alpha)
                              for i in range(30)), at=now - 600)  # fmt: skip
        await sign(storage, *(signature(pid, f"b{i}@example.org", partner_id=beta)
                              for i in range(3)), at=now - 600)  # fmt: skip
        rows = await moderation.trends(storage, pid, now, by="partner")
        assert [(r.label, r.last, r.usual, r.spike) for r in rows] == [
            ("alpha", 30, 2.0, True),
            ("beta", 3, 0.0, False),
        ]
        by_domain = await moderation.trends(storage, pid, now, by="domain", minimum=10)
        flood = HASHER.domain_key("flood.example")[:8]
        assert [(r.label, r.last, r.spike) for r in by_domain] == [(flood, 30, True)]
        await storage.disconnect()

    run(check())
