"""What an owner does about abuse: see quarantined signatures, invalidate or restore signatures
in bulk, and watch the rates that trend. The states are `domain/abuse`'s.

A bulk action changes states in batches of `BATCH` signatures, one transaction each, so that a
large one never holds the write path (on SQLite, the signatures' too) for long. Each batch
moves the counters by exactly the signatures whose state it changed, per partner, in the same
transaction, and says so to `events` (the webhooks' hook): counters, partner totals and the
registries' counts (told through the content revision when a count went down) stay exact
whatever signs, confirms or withdraws meanwhile, because a state only changes under the row's
lock and only from the state the statement names.

Submissions that wait for confirmation are selected too, and get the state they will have once
confirmed: a flood from an address domain the attacker owns cannot confirm its way past an
invalidation. They are on no counter yet, so nothing moves for them.
"""

from __future__ import annotations

import collections
import dataclasses
import random
from typing import Any

from server.domain import abuse, trending
from server.domain.abuse import Selection
from server.store import events
from server.store.engine import Transaction
from server.store.storage import Storage

BATCH = 1_000  # signatures per transaction of a bulk action


@dataclasses.dataclass(frozen=True)
class Moved:
    """A signature whose count a bulk action changed: enough to move its partner's counter and
    to name it to the webhooks' events (`store/events`), nothing personal."""

    id: int
    ref: str | None  # the name its links carry (None for a signature made before links)
    partner_id: int | None
    created_at: int


_WINDOW_BACK = trending.BASELINE_DAYS + 1  # the last hour and the days it is compared with


@dataclasses.dataclass(frozen=True)
class Tally:
    """How many a bulk action takes (a dry run) or took: stored signatures, and submissions
    still waiting for confirmation; with `count`, the petition's count after it."""

    signatures: int
    pending: int
    count: int | None = None
    went_down: bool = False


async def _where(
    storage: Storage, petition_id: int, selection: Selection
) -> tuple[str, dict[str, Any]]:
    """The selection as SQL conditions over either signature table, and their values."""
    clauses = ["petition_id = :p"]
    values: dict[str, Any] = {"p": petition_id}
    if selection.partner_code:
        partner = await storage.partner(petition_id, selection.partner_code)
        if partner is not None:
            clauses.append("partner_id = :partner")
            values["partner"] = partner.id
        else:  # a code that came in snippets but belongs to no partner
            clauses.append("unknown_partner = :code")
            values["code"] = selection.partner_code
    if selection.since is not None:
        clauses.append("created_at >= :since")
        values["since"] = selection.since
    if selection.until is not None:
        clauses.append("created_at < :until")
        values["until"] = selection.until
    if selection.domain_key:
        clauses.append("email_domain = :domain")
        values["domain"] = selection.domain_key
    return " AND ".join(clauses), values


async def preview(storage: Storage, petition_id: int, selection: Selection, action: str) -> Tally:
    """What `apply` would change, changing nothing (`--dry-run`, the dashboard's preview)."""
    sources, _ = abuse.moves(action, selection.quarantined_only)
    where, values = await _where(storage, petition_id, selection)
    states = ", ".join(f"'{s}'" for s in sources)  # our own constants, never input
    counts = []
    async with storage.session():
        for table in ("signatures", "pending_signatures"):
            sql = f"SELECT COUNT(*) FROM {table} WHERE {where} AND status IN ({states})"  # noqa: S608
            counts.append(int(await storage.database.fetch_val(sql, values)))
    return Tally(counts[0], counts[1])


async def apply(
    storage: Storage, petition_id: int, selection: Selection, action: str, now: int
) -> Tally:
    """Invalidate (`abuse.INVALIDATE`) or restore (`abuse.RESTORE`) the selected signatures,
    counters and events following in the same transactions."""
    sources, target = abuse.moves(action, selection.quarantined_only)
    where, values = await _where(storage, petition_id, selection)
    changed = pending = 0
    count: int | None = None
    went_down = False
    for source in sources:
        state = {**values, "source": source, "target": target}
        while True:
            async with storage.write() as tx:
                rows = await tx.fetch_all(
                    f"UPDATE signatures SET status = :target WHERE id IN ("  # noqa: S608
                    f"SELECT id FROM signatures WHERE {where} AND status = :source "
                    f"ORDER BY id LIMIT {BATCH}) RETURNING id, ref, partner_id, created_at",
                    state,
                )
                moved = [Moved(r[0], r[1], r[2], r[3]) for r in rows]
                if moved and abuse.COUNTED in (source, target):
                    sign = +1 if target == abuse.COUNTED else -1
                    count = await _move_counters(tx, storage, petition_id, moved, sign)
                    if sign < 0:
                        went_down = True
                        await events.signatures_withdrawn(
                            tx, [m.id for m in moved], "invalidated", now
                        )
                        # Registries never lower a count by themselves: tell them all.
                        await tx.execute("UPDATE revisions SET n = n + 1 WHERE name = 'content'")
                    else:
                        for m in moved:
                            await events.signature_counted(tx, m.id, now)
                        # A restored count can cross a milestone (or an auto_goal step).
                        await events.check_milestones(tx, petition_id, count, now)
            changed += len(moved)
            if len(moved) < BATCH:
                break
        async with storage.write() as tx:
            waiting = await tx.fetch_all(
                f"UPDATE pending_signatures SET status = :target "  # noqa: S608
                f"WHERE {where} AND status = :source RETURNING id",
                state,
            )
        pending += len(waiting)
    return Tally(changed, pending, count, went_down)


async def _move_counters(
    tx: Transaction, storage: Storage, petition_id: int, moved: list[Moved], sign: int
) -> int:
    """Each partner's counter moved by its signatures in `moved`; the petition's count after."""
    by_partner = collections.Counter(m.partner_id or 0 for m in moved)
    for partner_id, n in sorted(by_partner.items()):  # sorted: rows locked in one order
        await tx.execute(
            "INSERT INTO counters (petition_id, partner_id, shard, n) VALUES (:p, :partner, :s, "
            ":n) ON CONFLICT (petition_id, partner_id, shard) DO UPDATE SET n = counters.n + "
            "excluded.n",
            {"p": petition_id, "partner": partner_id,
             "s": random.randrange(storage.engine.shards), "n": sign * n},
        )  # fmt: skip
    total = await tx.fetch_val(
        "SELECT COALESCE(SUM(n), 0) FROM counters WHERE petition_id = :p", {"p": petition_id}
    )
    return int(total)


# --- What the owner sees ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class QuarantineRow:
    """Quarantined signatures of one partner (or none) in one hour: counts, never names."""

    hour: int
    partner_code: str | None
    known: bool
    signatures: int


@dataclasses.dataclass(frozen=True)
class States:
    """A petition's stored signatures by state, and its submissions waiting quarantined."""

    counted: int
    quarantined: int
    invalidated: int
    pending_quarantined: int


async def states(storage: Storage, petition_id: int) -> States:
    rows = await storage.database.fetch_all(
        "SELECT status, COUNT(*) FROM signatures WHERE petition_id = :p GROUP BY status",
        {"p": petition_id},
    )
    by_state = {r[0]: int(r[1]) for r in rows}
    waiting = await storage.database.fetch_val(
        "SELECT COUNT(*) FROM pending_signatures WHERE petition_id = :p AND status = :s",
        {"p": petition_id, "s": abuse.QUARANTINED},
    )
    return States(
        by_state.get(abuse.COUNTED, 0),
        by_state.get(abuse.QUARANTINED, 0),
        by_state.get(abuse.INVALIDATED, 0),
        int(waiting),
    )


async def quarantined(storage: Storage, petition_id: int, since: int) -> list[QuarantineRow]:
    """Quarantined signatures per hour and partner since `since`, newest hour first."""
    rows = await storage.database.fetch_all(
        "SELECT (s.created_at / 3600) * 3600 AS hour, pa.code, s.unknown_partner, COUNT(*) "
        "FROM signatures s LEFT JOIN partners pa ON pa.id = s.partner_id "
        "WHERE s.petition_id = :p AND s.status = :s AND s.created_at >= :since "
        "GROUP BY hour, pa.code, s.unknown_partner",
        {"p": petition_id, "s": abuse.QUARANTINED, "since": since},
    )
    found = [
        QuarantineRow(int(r[0]), r[1] or r[2], r[1] is not None or r[2] is None, int(r[3]))
        for r in rows
    ]
    return sorted(found, key=lambda q: (-q.hour, q.partner_code or ""))


async def trends(
    storage: Storage, petition_id: int, now: int, *, by: str, minimum: int = 0
) -> list[trending.Trend]:
    """The trending panel's rows, `by` "partner" or "domain" (its keyed hash's mark), over
    every submission that arrived (counted, quarantined, invalidated or waiting): a flood shows
    whatever became of it. See `domain/trending` for the rule."""
    assert by in ("partner", "domain")
    windows = " OR ".join(
        f"(created_at > :a{k} AND created_at <= :b{k})" for k in range(_WINDOW_BACK)
    )
    values: dict[str, Any] = {"p": petition_id, "now": now}
    for k in range(_WINDOW_BACK):
        values[f"b{k}"] = now - k * trending.DAY
        values[f"a{k}"] = now - k * trending.DAY - trending.HOUR
    if by == "partner":
        columns = "partner_id, unknown_partner, NULL AS d"
    else:
        columns = "NULL AS partner_id, NULL AS unknown_partner, email_domain AS d"
    arrived = " UNION ALL ".join(
        f"SELECT created_at, {columns} FROM {table} WHERE petition_id = :p AND ({windows})"  # noqa: S608
        for table in ("signatures", "pending_signatures")
    )
    async with storage.session():
        rows = await storage.database.fetch_all(
            "SELECT (CAST(:now AS BIGINT) - created_at) / 86400 AS back, partner_id, "  # noqa: S608
            f"unknown_partner, d, COUNT(*) FROM ({arrived}) t GROUP BY back, partner_id, "
            "unknown_partner, d",
            values,
        )
        first = await storage.database.fetch_val(
            "SELECT MIN(created_at) FROM (SELECT MIN(created_at) AS created_at FROM signatures "
            "WHERE petition_id = :p UNION ALL SELECT MIN(created_at) FROM pending_signatures "
            "WHERE petition_id = :p) t",
            {"p": petition_id},
        )
        codes = {p.id: p.code for p in await storage.petition_partners(petition_id)}
    counts: dict[tuple[str | None, bool], dict[int, int]] = collections.defaultdict(dict)
    for row in rows:  # a `databases` record iterates over its column names, not its values
        back, partner_id, unknown, domain, n = (row[i] for i in range(5))
        if by == "partner":
            label, known = (
                (codes.get(partner_id), True) if partner_id else (unknown, unknown is None)
            )
        elif domain is None:
            continue  # made before domains were kept
        else:
            label, known = trending.mark(domain), True
        day = counts[(label, known)]
        day[int(back)] = day.get(int(back), 0) + int(n)
    # Only days on which the petition was already taking submissions are its history.
    history = (
        0 if first is None else min(trending.BASELINE_DAYS, (now - int(first)) // trending.DAY)
    )
    return trending.trends(counts, history, minimum)
