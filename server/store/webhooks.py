"""Webhook endpoints and what their deliveries leave behind.

An endpoint belongs to a petition and to its owner or one partner. Its secret signs every
delivery (Standard Webhooks), so it is stored as it is: it cannot be hashed, and sealing it
would need a key on this same server. Whoever copies the database can therefore sign as this
server to its CRMs (docs/privacy.md). A rotation keeps the old secret signing beside the new
one for `ROTATION_OVERLAP` (24 h). The OSDI token is kept the same way.

Adding, removing or disabling an endpoint bumps the `content` revision, so every worker's
registry reloads the endpoints (the submission of a sealed server makes its boxes for them;
the events themselves are addressed to the endpoints read in the writing transaction).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from server.domain import webhooks as wh
from server.store import events
from server.store.engine import Transaction
from server.store.storage import Storage

ROTATION_OVERLAP = 86_400  # seconds the old secret still signs after a rotation
DELIVERIES_KEPT = 30 * 86_400  # seconds the metadata of a delivered event is kept
RECENT = 20  # deliveries and failures the dashboard shows per endpoint

_COLUMNS = """
e.id, e.petition_id, p.slug, pa.code, e.url, e.format, e.public_key, e.secret, e.old_secret,
e.old_secret_until, e.osdi_token, e.allow_http, e.allow_private, e.sequence, e.disabled_at,
e.disabled_reason, e.created_at, e.partner_id"""
_SELECT = f"""
SELECT {_COLUMNS} FROM webhook_endpoints e JOIN petitions p ON p.id = e.petition_id
LEFT JOIN partners pa ON pa.id = e.partner_id"""  # noqa: S608


@dataclasses.dataclass(frozen=True)
class Endpoint:
    id: int
    petition_id: int
    petition: str
    partner_code: str | None
    url: str
    format: str
    public_key: str | None
    secret: str = dataclasses.field(repr=False)
    old_secret: str | None = dataclasses.field(repr=False)
    old_secret_until: int | None
    osdi_token: str | None = dataclasses.field(repr=False)
    allow_http: bool
    allow_private: bool
    sequence: int
    disabled_at: int | None
    disabled_reason: str | None
    created_at: int
    partner_id: int | None = None

    def secrets(self, now: float) -> list[str]:
        """The secrets that sign now: the new one, and the old one within its overlap."""
        found = [self.secret]
        if self.old_secret and self.old_secret_until and now < self.old_secret_until:
            found.append(self.old_secret)
        return found

    @property
    def target(self) -> wh.Target:
        return wh.Target(self.id, self.partner_id, self.format, self.public_key)


def _endpoint(r: Any) -> Endpoint:
    return Endpoint(
        id=r[0], petition_id=r[1], petition=r[2], partner_code=r[3], url=r[4], format=r[5],
        public_key=r[6], secret=r[7], old_secret=r[8], old_secret_until=r[9], osdi_token=r[10],
        allow_http=bool(r[11]), allow_private=bool(r[12]), sequence=int(r[13]),
        disabled_at=r[14], disabled_reason=r[15], created_at=r[16], partner_id=r[17],
    )  # fmt: skip


async def _bump(tx: Transaction) -> None:
    await tx.execute("UPDATE revisions SET n = n + 1 WHERE name = 'content'")


async def add(
    storage: Storage,
    *,
    petition_id: int,
    url: str,
    partner_id: int | None = None,
    format: str = wh.STANDARD,
    public_key: str | None = None,
    osdi_token: str | None = None,
    allow_http: bool = False,
    allow_private: bool = False,
    now: float,
) -> tuple[int, str]:
    """A new endpoint: (its id, its secret). The milestones the petition has already passed
    are recorded as fired, so a new endpoint hears of those still ahead, not a burst of past
    ones."""
    if format not in wh.FORMATS:
        raise ValueError(f"unknown format {format!r}")
    secret = wh.new_secret()
    async with storage.write() as tx:
        new_id = await tx.fetch_val(
            "INSERT INTO webhook_endpoints (petition_id, partner_id, url, format, public_key, "
            "secret, osdi_token, allow_http, allow_private, sequence, created_at) VALUES "
            "(:p, :partner, :url, :format, :key, :secret, :token, :http, :private, 0, :now) "
            "RETURNING id",
            {"p": petition_id, "partner": partner_id, "url": url, "format": format,
             "key": public_key, "secret": secret, "token": osdi_token, "http": int(allow_http),
             "private": int(allow_private), "now": int(now)},
        )  # fmt: skip
        goal = await tx.fetch_val("SELECT goal FROM petitions WHERE id = :p", {"p": petition_id})
        total = await tx.fetch_val(
            "SELECT COALESCE(SUM(n), 0) FROM counters WHERE petition_id = :p", {"p": petition_id}
        )
        await events.goal_changed(tx, petition_id, int(goal), int(total), now)
        await _bump(tx)
    return int(new_id), secret


async def endpoints(storage: Storage, petition_id: int | None = None) -> list[Endpoint]:
    sql, values = _SELECT, {}
    if petition_id is not None:
        sql, values = sql + " WHERE e.petition_id = :p", {"p": petition_id}
    rows = await storage.database.fetch_all(sql + " ORDER BY e.id", values)
    return [_endpoint(r) for r in rows]


async def endpoint(storage: Storage, endpoint_id: int) -> Endpoint | None:
    row = await storage.database.fetch_one(_SELECT + " WHERE e.id = :id", {"id": endpoint_id})
    return None if row is None else _endpoint(row)


async def remove(storage: Storage, endpoint_id: int) -> bool:
    """An endpoint goes, with its queued events and its delivery records."""
    async with storage.write() as tx:
        gone = await tx.fetch_all(
            "DELETE FROM webhook_endpoints WHERE id = :id RETURNING id", {"id": endpoint_id}
        )
        await tx.execute("DELETE FROM outbox WHERE endpoint_id = :id", {"id": endpoint_id})
        await tx.execute(
            "DELETE FROM webhook_deliveries WHERE endpoint_id = :id", {"id": endpoint_id}
        )
        await _bump(tx)
    return bool(gone)


async def rotate(storage: Storage, endpoint_id: int, now: float) -> str | None:
    """A new secret; the one it replaces keeps signing for `ROTATION_OVERLAP`. None: no such
    endpoint."""
    secret = wh.new_secret()
    async with storage.write() as tx:
        changed = await tx.fetch_all(
            "UPDATE webhook_endpoints SET old_secret = secret, old_secret_until = :until, "
            "secret = :secret WHERE id = :id RETURNING id",
            {"id": endpoint_id, "secret": secret, "until": int(now) + ROTATION_OVERLAP},
        )
    return secret if changed else None


async def send_test(storage: Storage, endpoint_id: int, now: float) -> bool:
    """Queue a `webhook.test`; False: no such endpoint, or an OSDI one (`wh.refuses_test`)."""
    async with storage.write() as tx:
        return await events.test_event(tx, endpoint_id, now)


async def disable(tx: Transaction, endpoint_id: int, now: float, reason: str) -> None:
    await tx.execute(
        "UPDATE webhook_endpoints SET disabled_at = :now, disabled_reason = :reason "
        "WHERE id = :id AND disabled_at IS NULL",
        {"id": endpoint_id, "now": int(now), "reason": reason},
    )
    await _bump(tx)


@dataclasses.dataclass(frozen=True)
class Delivered:
    event_id: str
    type: str
    sequence: int
    attempts: int
    status: int
    created_at: int
    delivered_at: int


@dataclasses.dataclass(frozen=True)
class Waiting:
    """An event not delivered: still being tried (`failed_at` None), or failed for good."""

    row_id: int
    event_id: str
    type: str
    sequence: int
    attempts: int
    last_error: str | None
    created_at: int
    failed_at: int | None


@dataclasses.dataclass(frozen=True)
class Activity:
    delivered: list[Delivered]
    waiting: list[Waiting]


_LEFT = """
SELECT id, payload, attempts, last_error, created_at, failed_at FROM outbox
WHERE endpoint_id = :id AND topic = 'webhook' AND failed_at IS {} NULL ORDER BY id DESC LIMIT :n"""
_COUNTS = """
SELECT endpoint_id, SUM(CASE WHEN failed_at IS NULL THEN 1 ELSE 0 END),
    SUM(CASE WHEN failed_at IS NULL THEN 0 ELSE 1 END)
FROM outbox WHERE topic = 'webhook' AND endpoint_id IS NOT NULL GROUP BY endpoint_id"""
# Failed events tried again now, with another day of retries (one, or all of an endpoint's).
_REDELIVER = """
UPDATE outbox SET failed_at = NULL, available_at = :now, created_at = :now, attempts = 0,
    claimed_until = NULL
WHERE endpoint_id = :e AND topic = 'webhook' AND failed_at IS NOT NULL{} RETURNING id"""


async def activity(storage: Storage, endpoint_id: int, limit: int = RECENT) -> Activity:
    """An endpoint's recent deliveries, and its events waiting or failed (metadata only): the
    `limit` latest of each, the failed ones apart, so that a flood of events still being tried
    never pushes a failed one, and its redeliver button, off the dashboard. Older ones are
    counted by `waiting_counts` and redelivered all at once by `redeliver_failed`."""
    done = await storage.database.fetch_all(
        "SELECT event_id, type, sequence, attempts, status, created_at, delivered_at "
        "FROM webhook_deliveries WHERE endpoint_id = :id ORDER BY id DESC LIMIT :n",
        {"id": endpoint_id, "n": limit},
    )
    left = []
    for failed in ("", "NOT"):
        left += await storage.database.fetch_all(
            _LEFT.format(failed), {"id": endpoint_id, "n": limit}
        )
    left.sort(key=lambda r: -int(r[0]))
    waiting = []
    for r in left:
        payload = json.loads(r[1])
        waiting.append(
            Waiting(r[0], payload.get("event_id", ""), payload.get("type", ""),
                    int(payload.get("sequence", 0)), int(r[2]), r[3], int(r[4]), r[5])
        )  # fmt: skip
    return Activity([Delivered(*(r[i] for i in range(7))) for r in done], waiting)


async def waiting_counts(storage: Storage) -> dict[int, tuple[int, int]]:
    """Endpoint id → (events still being tried, events failed for good), counted exactly."""
    rows = await storage.database.fetch_all(_COUNTS)
    return {int(r[0]): (int(r[1]), int(r[2])) for r in rows}


async def redeliver_failed(storage: Storage, endpoint_id: int, now: float) -> int:
    """Every event of the endpoint that failed for good is tried again now (`redeliver`, for
    all of them: the dashboard shows only the latest `RECENT`); returns how many."""
    async with storage.write() as tx:
        changed = await tx.fetch_all(_REDELIVER.format(""), {"e": endpoint_id, "now": int(now)})
    return len(changed)


async def redeliver(storage: Storage, endpoint_id: int, row_id: int, now: float) -> bool:
    """An event that failed for good is tried again now, with its `webhook-id`, and another
    day of retries. False: no such failed event of this endpoint."""
    async with storage.write() as tx:
        changed = await tx.fetch_all(
            _REDELIVER.format(" AND id = :id"), {"id": row_id, "e": endpoint_id, "now": int(now)}
        )
    return bool(changed)


async def enable(storage: Storage, endpoint_id: int) -> bool:
    async with storage.write() as tx:
        changed = await tx.fetch_all(
            "UPDATE webhook_endpoints SET disabled_at = NULL, disabled_reason = NULL "
            "WHERE id = :id RETURNING id",
            {"id": endpoint_id},
        )
        await _bump(tx)
    return bool(changed)


async def purge(storage: Storage, now: float, failed_kept: float) -> None:
    """Failed events past `failed_kept`, delivery records past `DELIVERIES_KEPT`."""
    async with storage.write() as tx:
        await tx.execute(
            "DELETE FROM outbox WHERE topic = 'webhook' AND failed_at IS NOT NULL "
            "AND failed_at < :before",
            {"before": int(now - failed_kept)},
        )
        await tx.execute(
            "DELETE FROM webhook_deliveries WHERE delivered_at < :before",
            {"before": int(now - DELIVERIES_KEPT)},
        )
