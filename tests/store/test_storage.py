"""Storage on both engines: migrations, petition import, and the signing plan's rules."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from server.domain.petitions import Petition
from server.domain.signatures import Consent, NewSignature
from server.domain.validation import validate_signer
from server.store.schema import MIGRATIONS
from server.store.storage import Storage
from server.store.writer import create_writer
from tests.support import petitions

EXAMPLE = petitions.example()


def signature(
    petition_id: int,
    email: str,
    *,
    nonce: str | None = None,
    partner_id: int | None = None,
    unknown: str | None = None,
) -> NewSignature:
    return NewSignature(
        petition_id=petition_id,
        partner_id=partner_id,
        unknown_partner=unknown,
        nonce=nonce or secrets.token_urlsafe(12),
        nonce_expires_at=2_000_000_000,
        signer=validate_signer({"name": "Test Signer", "email": email}),
        lang="en",
        consent=Consent("en", "consent text"),
    )


async def opened(url: str) -> Storage:
    storage = Storage(url)
    await storage.connect()
    await storage.migrate()
    return storage


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


def test_migrations_are_applied_once(database_url: str) -> None:
    async def check() -> None:
        storage = await opened(database_url)
        assert await storage.migrate() == len(MIGRATIONS)  # again: nothing to do
        versions = await storage.database.fetch_all("SELECT version FROM schema_migrations")
        assert [v[0] for v in versions] == list(range(1, len(MIGRATIONS) + 1))
        await storage.disconnect()

    run(check())


def test_sqlite_is_in_wal_mode(tmp_path: Path) -> None:
    async def check() -> None:
        storage = await opened(f"sqlite:///{tmp_path / 'x.db'}")
        assert await storage.database.fetch_val("PRAGMA journal_mode") == "wal"
        assert await storage.database.fetch_val("PRAGMA synchronous") == 2  # FULL
        assert await storage.database.fetch_val("PRAGMA busy_timeout") == 5000
        await storage.disconnect()

    run(check())


def test_import_is_idempotent_and_reports_changes(database_url: str) -> None:
    async def check() -> None:
        storage = await opened(database_url)
        assert await storage.import_petitions([EXAMPLE]) == {EXAMPLE.slug: "created"}
        revision = await storage.content_revision()
        assert await storage.import_petitions([EXAMPLE]) == {EXAMPLE.slug: "unchanged"}
        assert await storage.content_revision() == revision
        raised = dataclasses.replace(EXAMPLE, goal=75_000)
        assert await storage.import_petitions([raised]) == {EXAMPLE.slug: "updated"}
        assert await storage.content_revision() > revision
        rows = await storage.petitions()
        assert [(r.slug, r.goal) for r in rows] == [(EXAMPLE.slug, 75_000)]
        assert rows[0].petition == raised  # the whole document survives the round trip
        await storage.disconnect()

    run(check())


def test_import_is_all_or_nothing(database_url: str) -> None:
    def petitions_then_failure() -> Iterator[Petition]:
        yield dataclasses.replace(EXAMPLE, slug="first-one")
        raise RuntimeError("the second file broke")

    async def check() -> None:
        storage = await opened(database_url)
        with pytest.raises(RuntimeError):
            await storage.import_petitions(petitions_then_failure())
        assert await storage.petitions() == []
        await storage.disconnect()

    run(check())


async def _sign(
    storage: Storage, batch: list[NewSignature], at: float | None = None
) -> list[int | None]:
    """Through the real writer, as the server does (recorded `at` that instant, if given)."""
    writer = create_writer(storage) if at is None else create_writer(storage, lambda: at)
    await writer.start()
    try:
        return list(await asyncio.gather(*(writer.submit(s) for s in batch)))
    finally:
        await writer.close()


def test_signing_rules(database_url: str) -> None:
    async def check() -> None:
        storage = await opened(database_url)
        await storage.import_petitions([EXAMPLE])
        pid = await storage.petition_id(EXAMPLE.slug)
        assert pid is not None
        partner = await storage.add_partner(pid, "ngo-a", "NGO A")

        first = signature(pid, "someone@example.org", nonce="n1", partner_id=partner.id)
        assert await _sign(storage, [first]) == [1]
        # Same person, other case and spaces, another token: not counted, same kind of answer.
        again = signature(pid, "  SomeOne@Example.org ", nonce="n2")
        assert await _sign(storage, [again]) == [1]
        # The very same submission retried: same answer.
        assert await _sign(storage, [first]) == [1]
        # A used token with another email: refused.
        assert await _sign(storage, [signature(pid, "other@example.org", nonce="n1")]) == [None]
        # A new person through an unknown partner code.
        assert await _sign(storage, [signature(pid, "new@example.org", unknown="typo")]) == [2]

        assert await storage.totals() == {pid: 2}
        assert await storage.stored_signatures(pid) == 2
        assert await storage.partner_totals(pid) == {partner.id: 1, None: 1}
        unknown = await storage.unknown_partner_activity(pid)
        assert [(u.code, u.signatures) for u in unknown] == [("typo", 1)]
        await storage.disconnect()

    run(check())


def test_signatures_over_time_are_bucketed_in_utc(database_url: str) -> None:
    """What the dashboard's charts and rates read: buckets start at UTC midnight and on the
    hour, windows include their start and exclude their end, a partner sees only its own."""
    midnight = 1_700_006_400  # 2023-11-15 00:00:00 UTC
    day, hour = 86_400, 3_600
    moments = {  # second of signing: partner "a"?
        midnight - 1: True,  # the day before, its last second
        midnight: True,
        midnight + hour - 1: False,
        midnight + hour: True,
        midnight + day + hour: False,
    }

    async def check() -> None:
        storage = await opened(database_url)
        await storage.import_petitions([EXAMPLE])
        pid = await storage.petition_id(EXAMPLE.slug)
        assert pid is not None
        a = await storage.add_partner(pid, "ngo-a", "NGO A")
        assert await storage.signature_span(pid) == (None, None)
        for i, (moment, through_a) in enumerate(moments.items()):
            partner = a.id if through_a else None
            signed = signature(pid, f"t{i}@example.org", partner_id=partner)
            assert await _sign(storage, [signed], at=moment + 0.75) == [i + 1]

        days = await storage.signature_buckets(pid, day, midnight - day)
        assert days == {midnight - day: 1, midnight: 3, midnight + day: 1}
        hours = await storage.signature_buckets(pid, hour, midnight)
        assert hours == {midnight: 2, midnight + hour: 1, midnight + day + hour: 1}
        by_a = await storage.signature_buckets(pid, day, midnight - day, a.id)
        assert by_a == {midnight - day: 1, midnight: 2}

        assert await storage.signatures_between(pid, midnight, midnight + hour) == 2
        assert await storage.signatures_between(pid, midnight, midnight + day + hour) == 3
        assert await storage.signatures_between(pid, midnight - 1, midnight + day, a.id) == 3
        assert await storage.signature_span(pid) == (midnight - 1, midnight + day + hour)
        assert await storage.signature_span(pid, a.id) == (midnight - 1, midnight + hour)
        await storage.disconnect()

    run(check())


def test_duplicates_inside_one_group(database_url: str) -> None:
    async def check() -> None:
        storage = await opened(database_url)
        await storage.import_petitions([EXAMPLE])
        pid = await storage.petition_id(EXAMPLE.slug)
        assert pid is not None
        batch = [
            signature(pid, "a@example.org", nonce="same"),
            signature(pid, "b@example.org", nonce="same"),
            signature(pid, "A@example.org", nonce="other"),
            signature(pid, "c@example.org"),
        ]
        results = await _sign(storage, batch)
        assert results.count(None) == 1
        assert await storage.totals() == {pid: 2}
        assert await storage.stored_signatures(pid) == 2
        await storage.disconnect()

    run(check())


def test_concurrent_signers_are_counted_exactly(database_url: str) -> None:
    async def check() -> None:
        storage = await opened(database_url)
        await storage.import_petitions([EXAMPLE])
        pid = await storage.petition_id(EXAMPLE.slug)
        assert pid is not None
        batch = [signature(pid, f"s{i}@example.org") for i in range(400)]
        results = await _sign(storage, batch)
        assert None not in results
        assert max(cast(list[int], results)) == 400
        assert await storage.totals() == {pid: 400}
        assert await storage.stored_signatures(pid) == 400
        await storage.disconnect()

    run(check())


def test_one_token_submitted_fifty_times_at_once(database_url: str) -> None:
    async def check() -> None:
        storage = await opened(database_url)
        await storage.import_petitions([EXAMPLE])
        pid = await storage.petition_id(EXAMPLE.slug)
        assert pid is not None
        batch = [signature(pid, f"r{i}@example.org", nonce="one-token") for i in range(50)]
        results = await _sign(storage, batch)
        assert sum(r is not None for r in results) == 1
        assert await storage.stored_signatures(pid) == 1
        await storage.disconnect()

    run(check())


def test_used_nonces_are_purged_after_expiry(database_url: str) -> None:
    async def check() -> None:
        storage = await opened(database_url)
        await storage.import_petitions([EXAMPLE])
        pid = await storage.petition_id(EXAMPLE.slug)
        assert pid is not None
        old = dataclasses.replace(signature(pid, "x@example.org", nonce="old"), nonce_expires_at=10)
        await _sign(storage, [old, signature(pid, "y@example.org", nonce="fresh")])
        await storage.purge_used_nonces(now=1_000)
        left = await storage.database.fetch_all("SELECT nonce FROM used_tokens ORDER BY nonce")
        assert [r[0] for r in left] == ["fresh"]
        assert await storage.stored_signatures(pid) == 2  # signatures stay
        await storage.disconnect()

    run(check())
