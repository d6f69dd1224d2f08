"""Breakdowns and the delivery pack read only the signatures that count, on both engines: a
quarantined or invalidated signature is on no total by country or language (the public
petition JSON, the keyed API, the dashboard and the pack all read `totals`) and is never named
on the list handed to the target, even when its signer ticked `consent_name_to_target`."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Coroutine
from typing import Any

from server.domain import abuse, links
from server.domain.abuse import Selection
from server.domain.links import Link
from server.domain.petitions import Entry
from server.domain.signatures import Consent, NewSignature
from server.domain.validation import validate_signer
from server.store import delivery, moderation, totals
from server.store.storage import Storage
from server.store.writer import create_writer
from tests.support import petitions

T = 1_700_000_000


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


def signature(pid: int, name: str, country: str, *, status: str = abuse.COUNTED) -> NewSignature:
    fields = {"name": name, "email": f"{secrets.token_hex(4)}@example.org", "country": country,
              "consent_name_to_target": True}  # fmt: skip
    return NewSignature(
        petition_id=pid, partner_id=None, unknown_partner=None,
        nonce=secrets.token_urlsafe(12), nonce_expires_at=2_000_000_000,
        signer=validate_signer(fields), lang="en", consent=Consent("en", "consent text"),
        ref=links.new_ref(), withdraw=Link.new(), confirm=None, confirm_lifetime=604_800,
        status=status,
    )  # fmt: skip


async def opened(url: str) -> tuple[Storage, Entry]:
    storage = Storage(url)
    await storage.connect()
    await storage.migrate()
    await storage.import_petitions([petitions.example()])
    (entry,) = [e for e in await storage.petitions() if e.slug == petitions.example().slug]
    return storage, entry


async def sign(storage: Storage, *batch: NewSignature, at: int = T) -> None:
    writer = create_writer(storage, lambda: at)
    await writer.start()
    try:
        await asyncio.gather(*(writer.submit(s) for s in batch))
    finally:
        await writer.close()


def test_quarantined_and_invalidated_signatures_are_on_no_breakdown_and_no_list(
    database_url: str,
) -> None:
    async def check() -> None:
        storage, entry = await opened(database_url)
        pid = entry.id
        # The German one signed earlier, and an owner took it off.
        await sign(storage, signature(pid, "Struck German", "DE"), at=T - 100)
        earlier = Selection(until=T - 50)
        await moderation.apply(storage, pid, earlier, abuse.INVALIDATE, T)
        await sign(
            storage,
            signature(pid, "Counted Kazakh", "KZ"),
            signature(pid, "Held Russian", "RU", status=abuse.QUARANTINED),
        )
        assert await totals.by_country(storage, pid) == {"KZ": 1}
        assert await totals.by_language(storage, pid) == {"en": 1}
        made = await delivery.pack(storage, entry, lang="en", with_names=True, now=T)
        assert made.total == 1
        assert [n.name for n in made.names or ()] == ["Counted Kazakh"]
        assert dict(made.by_country) == {"KZ": None}  # under 10: no number; no DE, no RU
        # Restored, the held one counts and is named.
        await moderation.apply(storage, pid, Selection(quarantined_only=True), abuse.RESTORE, T)
        assert await totals.by_country(storage, pid) == {"KZ": 1, "RU": 1}
        made = await delivery.pack(storage, entry, lang="en", with_names=True, now=T)
        assert sorted(n.name for n in made.names or ()) == ["Counted Kazakh", "Held Russian"]
        await storage.disconnect()

    run(check())
