"""Counted signatures grouped by country and by language, and a petition's dates: what the
breakdowns (`domain/breakdowns`) and the delivery pack are made of.

Pending submissions wait in another table, and quarantined and invalidated signatures, stored
in `signatures` beside the counted ones (`domain/abuse`), are left out by their `status`, so
these totals agree with the counters. Country and language are clear columns, kept by
sealing and by retention, so these totals stay after names are gone. A petition's rows are one
range of the `(petition_id, created_at)` index; one partner's, of `(partner_id, created_at)`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from server.store.storage import Storage

_GROUPED = {
    (column, partner): (
        f"SELECT {column}, COUNT(*) FROM signatures WHERE "  # noqa: S608 (two fixed columns)
        + ("partner_id = :partner AND petition_id = :p" if partner else "petition_id = :p")
        # Quarantined and invalidated rows are stored too, and count nowhere (domain/abuse).
        + f" AND status = 'counted' GROUP BY {column}"
    )
    for column in ("country", "lang")
    for partner in (False, True)
}


async def by_country(
    storage: Storage, petition_id: int, partner_id: int | None = None
) -> dict[str | None, int]:
    """Counted signatures per country code (None: no country given), of the petition or of
    one partner's signers."""
    return await _grouped(storage, "country", petition_id, partner_id)


async def by_language(
    storage: Storage, petition_id: int, partner_id: int | None = None
) -> dict[str | None, int]:
    """Counted signatures per form language, of the petition or of one partner's signers."""
    return await _grouped(storage, "lang", petition_id, partner_id)


async def _grouped(
    storage: Storage, column: str, petition_id: int, partner_id: int | None
) -> dict[str | None, int]:
    values: dict[str, int] = {"p": petition_id}
    if partner_id is not None:
        values["partner"] = partner_id
    rows = await storage.database.fetch_all(_GROUPED[column, partner_id is not None], values)
    return {(r[0] or None): int(r[1]) for r in rows}


async def dates(storage: Storage, petition_id: int) -> tuple[int, int | None]:
    """When the petition was first imported (opened) and when it closed (None while open)."""
    row = await storage.database.fetch_one(
        "SELECT created_at, closed_at FROM petitions WHERE id = :p", {"p": petition_id}
    )
    assert row is not None
    return int(row[0]), None if row[1] is None else int(row[1])
