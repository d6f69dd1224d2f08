"""What a delivery pack is made of, read from the database in one held connection, and the pack
made of it (`domain/delivery`): used by `petition-widget delivery` and the dashboard's copy.

The names are read by a query of their own that selects the name, the country and the sealed
box of the signers who ticked `consent_name_to_target` and whose signature counts (a
quarantined or invalidated one is neither counted nor named), and nothing else: no email is read, so
none can reach a pack. A sealed row's name is in the owner's box; it is opened with the secret
key given (`secret`), here on the owner's machine, and only the name is kept of it. Without a
key, a sealed row cannot be named: `NamesSealed`. A row whose name retention deleted is counted
and not named (docs/owners.md: make the pack before retention).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from server.domain import delivery, sealing
from server.domain.errors import PetitionWidgetError
from server.domain.petitions import Entry
from server.store import totals

if TYPE_CHECKING:
    from server.store.storage import Storage

_NAMED = """
SELECT name, country, sealed FROM signatures
WHERE petition_id = :p AND consent_name_to_target = 1 AND status = 'counted'
ORDER BY created_at, id"""
HOUR = 3600


class NamesSealed(PetitionWidgetError):
    """The names are sealed and no secret key was given to open them."""


async def pack(
    storage: Storage,
    entry: Entry,
    *,
    lang: str,
    with_names: bool,
    with_partners: bool = False,
    secret: Any = None,
    now: int | None = None,
) -> delivery.Pack:
    """The pack of `entry`. `with_names`: list the signers who chose to be named (their boxes
    opened with `secret`, a `nacl.public.PrivateKey`, when sealed); `with_partners`: the totals
    by partner, with the partners' names."""
    async with storage.session():
        by_partner = await storage.partner_totals(entry.id)
        countries = await totals.by_country(storage, entry.id)
        hours = await storage.signature_buckets(entry.id, HOUR, 0)
        opened_at, closed_at = await totals.dates(storage, entry.id)
        partners = await storage.petition_partners(entry.id) if with_partners else []
        names = await _names(storage, entry.id, secret) if with_names else None
    partner_lines = None
    if with_partners:
        partner_lines = sorted(
            ((p.name, by_partner.get(p.id, 0)) for p in partners if by_partner.get(p.id)),
            key=lambda line: (-line[1], line[0]),
        )
    return delivery.pack(
        entry,
        lang=lang,
        total=sum(by_partner.values()),
        opened_at=opened_at,
        closed_at=closed_at,
        generated_at=int(time.time()) if now is None else now,
        by_country=countries,
        hours=hours,
        names=names,
        by_partner=partner_lines,
    )


async def _names(storage: Storage, petition_id: int, secret: Any) -> list[delivery.Named]:
    rows = await storage.database.fetch_all(_NAMED, {"p": petition_id})
    named = []
    for name, country, box in ((r[0], r[1], r[2]) for r in rows):
        if box is not None:
            if secret is None:
                raise NamesSealed(
                    "signer data is sealed: the names need the owner's secret key (--secret-key)"
                )
            name = sealing.open_box(box, secret).get("name") or ""
        if name:  # retention deleted it: counted, not named
            named.append(delivery.Named(name, country or None))
    return named
