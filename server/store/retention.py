"""Retention: signer data deleted once a petition has been closed for its `[retention] days`.

What goes, for every signature of such a petition: the personal data (the sealed boxes, the
ones sealed for webhook endpoints among them, or the name, email and comment where nothing was
sealed), the keyed hash of the address and of its
domain, and everything else that could tie a signature to a person: pending submissions, the
digests of used tokens, the mail quotas. What stays: the clear columns (partner, country,
language, consent flags, the hour), so counts, charts and delivery totals do not move: the
counters are not touched, and the rows stay to be counted and charted. A signature's email key
becomes `retained:<id>`, which names no one and keeps the one-per-address index satisfied.

A petition reopened after retention takes new signatures as before; an address whose old
signature was retained can sign again (nothing is left to recognise it by).

Done in batches of `BATCH` rows, each its own transaction on the write path, so a large
petition never holds the write lock for long and a crash part-way simply leaves the rest for
the next run (the work is idempotent: retained rows are recognised by their key).
"""

from __future__ import annotations

import dataclasses
import time

from server.domain import abuse
from server.domain.petitions import Entry
from server.store import events
from server.store.storage import Storage

DAY = 86_400
BATCH = 1_000
RETAINED = "retained:"

_LEFT = "SELECT COUNT(*) FROM signatures WHERE petition_id = :p AND email_key NOT LIKE :retained"
_RETAIN = """
UPDATE signatures SET name = '', email = '', comment = NULL, sealed = NULL,
    partner_sealed = NULL, webhook_sealed = NULL, email_domain = NULL,
    email_key = 'retained:' || CAST(id AS TEXT)
WHERE id IN (
    SELECT id FROM signatures WHERE petition_id = :p AND email_key NOT LIKE :retained
    ORDER BY id LIMIT :n
) RETURNING id"""

# The same rows as `_RETAIN`'s, of which only those that count are announced.
_DUE_IDS = """
SELECT id, status FROM signatures WHERE petition_id = :p AND email_key NOT LIKE :retained
ORDER BY id LIMIT :n"""


@dataclasses.dataclass(frozen=True)
class Due:
    """A petition whose signer data retention deletes now, and how many signatures hold some."""

    petition_id: int
    slug: str
    closed_at: int
    signatures: int
    pending: int


async def due(storage: Storage, entries: list[Entry], now: float) -> list[Due]:
    """The petitions past their retention at `now`, with what is left to delete."""
    found = []
    rows = await storage.database.fetch_all(
        "SELECT id, closed_at FROM petitions WHERE status = 'closed' AND closed_at IS NOT NULL"
    )
    closed = {r[0]: int(r[1]) for r in rows}
    for entry in entries:
        days = entry.petition.retention_days
        closed_at = closed.get(entry.id)
        if not days or closed_at is None or closed_at + days * DAY > now:
            continue
        values = {"p": entry.id, "retained": RETAINED + "%"}
        left = int(await storage.database.fetch_val(_LEFT, values))
        pending = int(
            await storage.database.fetch_val(
                "SELECT COUNT(*) FROM pending_signatures WHERE petition_id = :p", {"p": entry.id}
            )
        )
        found.append(Due(entry.id, entry.slug, closed_at, left, pending))
    return found


async def retain(storage: Storage, petition_id: int, now: float | None = None) -> int:
    """Delete one petition's signer data (see the module); returns the signatures it changed."""
    values = {"p": petition_id}
    now = time.time() if now is None else now
    async with storage.write() as tx:
        # What ties a person to the petition beyond its signatures: their tokens' digests,
        # their pending submissions and their mail quotas.
        await tx.execute(
            "UPDATE used_tokens SET email_digest = NULL WHERE ref IN ("
            "SELECT ref FROM signatures WHERE petition_id = :p AND ref IS NOT NULL "
            "UNION SELECT ref FROM pending_signatures WHERE petition_id = :p)",
            values,
        )
        await tx.execute(
            "DELETE FROM links WHERE ref IN "
            "(SELECT ref FROM pending_signatures WHERE petition_id = :p)",
            values,
        )
        await tx.execute("DELETE FROM pending_signatures WHERE petition_id = :p", values)
        await tx.execute("DELETE FROM mail_quota WHERE petition_id = :p", values)
    changed = 0
    while True:
        async with storage.write() as tx:
            batch = {**values, "n": BATCH, "retained": RETAINED + "%"}
            # Each endpoint that heard of these signatures hears that their data went, in the
            # same transaction (the rows stay, counted, without anyone's data). One that does
            # not count (quarantined, invalidated) was never announced, or withdrawn already.
            ids = await tx.fetch_all(_DUE_IDS, batch)
            counted = [int(r[0]) for r in ids if r[1] == abuse.COUNTED]
            await events.signatures_withdrawn(tx, counted, "retention", now)
            done = len(await tx.fetch_all(_RETAIN, batch))
        changed += done
        if done < BATCH:
            return changed


async def run(storage: Storage, entries: list[Entry], now: float) -> list[Due]:
    """Retain every petition that is due; returns what was due (and is now done)."""
    found = await due(storage, entries, now)
    for petition in found:
        await retain(storage, petition.petition_id, now)
    return found
