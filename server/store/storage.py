"""Storage: the queries of the project, written once for SQLite and PostgreSQL alike.

The same statements run on both engines (standard SQL plus `ON CONFLICT` and `RETURNING`,
which both understand); what differs is the engine adapter's (`engine.py`). Reads go through
`databases`; every write goes through `write()`, the one write path, which on SQLite is
serialised with the group commit of signatures (`writer`, `signatures`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.domain.access import AccessKeyRow
from server.domain.errors import Conflict, StorageUnavailable
from server.domain.export import ExportRow
from server.domain.partners import Partner
from server.domain.petitions import Entry, Petition
from server.domain.sealing import EmailHasher
from server.store import events, sessions
from server.store.engine import Engine, Transaction, describe, engine_for
from server.store.keying import key_email_addresses
from server.store.schema import MIGRATIONS
from server.store.signatures import DAY

logger = logging.getLogger("petition_widget.storage")

EXPORT_BATCH = 500  # rows an export's reader hands over at a time
EXPORT_QUEUE = 4  # batches it may read ahead of the response
_PURGE_NONCES = "DELETE FROM used_tokens WHERE expires_at < :now"
_PARTNERS = "SELECT id, petition_id, code, name, public_key FROM partners"
# When a petition closed: kept while it stays closed, cleared when it opens again. Retention
# counts from it.
_CLOSED_AT = "CASE WHEN :status = 'closed' THEN COALESCE(closed_at, CAST(:now AS BIGINT)) END"
_UPDATE_IMPORTED = (
    "UPDATE petitions SET document = :document, goal = :goal, status = :status, "  # noqa: S608
    f"updated_at = :now, closed_at = {_CLOSED_AT} WHERE slug = :slug"
)


def _partner(row: Any) -> Partner:
    return Partner(row[0], row[1], row[2], row[3], row[4])


# --- The storage object -------------------------------------------------------------------------


class Storage:
    def __init__(
        self,
        database_url: str,
        *,
        synchronous: str = "full",
        sealed_events: EmailHasher | None = None,
    ) -> None:
        """`sealed_events`: on a sealed server, the key its webhook events are encrypted
        under while they wait in the outbox (`events`); None keeps them in clear."""
        self.url = database_url
        self.engine: Engine = engine_for(database_url, synchronous)
        self.engine.sealed_events = sealed_events
        self.database = self.engine.database

    @property
    def dialect(self) -> str:
        """The engine's name, "sqlite" or "postgresql" (for tests and messages; the store's
        own code asks its adapter instead of testing this)."""
        return self.engine.name

    async def connect(self) -> None:
        try:
            await self.database.connect()
        except Exception as exc:
            raise StorageUnavailable(describe(exc)) from None

    async def disconnect(self) -> None:
        await self.engine.close()
        await self.database.disconnect()

    def write(self) -> contextlib.AbstractAsyncContextManager[Transaction]:
        """A write transaction on the one write path: committed when the block ends, rolled
        back if it raises. Hold it for statements only, never across network I/O."""
        return self.engine.transaction()

    def is_unavailable(self, exc: BaseException) -> bool:
        return self.engine.is_unavailable(exc)

    def exposed_files(self) -> list[tuple[Path, int]]:
        """The database files here that others than their owner may read or write, and their
        modes: whoever may read them may copy the whole database."""
        return self.engine.exposed_files()

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[None]:
        """Hold one read connection for the block: several reads in a row (a dashboard page, a
        refresh loop) then share it instead of opening one each (on SQLite, `databases` opens
        a connection and a thread per query otherwise)."""
        async with self.database.connection():
            yield

    async def migrate(self, email_hasher: EmailHasher | None = None) -> int:
        """Apply the migrations this database lacks; returns the schema version. With the
        keyed hash of addresses, also re-key a database that was not keyed yet (`keying`)."""
        async with self.write() as tx:
            await self.engine.lock_for_migration(tx)
            await tx.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)"
            )
            current = await tx.fetch_val("SELECT MAX(version) FROM schema_migrations") or 0
            for version, statements in enumerate(MIGRATIONS, start=1):
                if version <= current:
                    continue
                for step in statements:
                    if isinstance(step, str):
                        await tx.execute(step.format(**self.engine.types))
                    else:
                        await step(tx)
                await tx.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (:v, :t)",
                    {"v": version, "t": _now()},
                )
                logger.info("applied database migration %d", version)
            if email_hasher is not None and await key_email_addresses(tx, email_hasher):
                logger.info("email keys are now keyed hashes (EMAIL_HASH_KEY)")
        return len(MIGRATIONS)

    async def ping(self) -> None:
        await self.database.fetch_val("SELECT 1")

    async def probe_write(self) -> None:
        """A small real write, to learn whether writing works again after a failure."""
        async with self.write() as conn:
            await conn.execute(
                "INSERT INTO revisions (name, n) VALUES ('write-probe', 1) "
                "ON CONFLICT (name) DO UPDATE SET n = revisions.n + 1"
            )

    # Petitions -----------------------------------------------------------------------------

    async def import_petitions(self, petitions: Iterable[Petition]) -> dict[str, str]:
        """Insert or update petitions in one transaction: all or nothing.

        Returns, per slug, 'created', 'updated' or 'unchanged'.
        """
        now = _now()
        outcome = {}
        async with self.write() as conn:
            for p in petitions:
                document = json.dumps(p.to_document(), ensure_ascii=False, sort_keys=True)
                row = await conn.fetch_one(
                    "SELECT document, goal, status FROM petitions WHERE slug = :slug",
                    {"slug": p.slug},
                )
                if row is None:
                    await conn.execute(
                        "INSERT INTO petitions (slug, document, goal, status, created_at, "
                        "updated_at, closed_at) VALUES (:slug, :document, :goal, :status, :now, "
                        ":now, CASE WHEN :status = 'closed' THEN CAST(:now AS BIGINT) END)",
                        {"slug": p.slug, "document": document, "goal": p.goal,
                         "status": p.status, "now": now},
                    )  # fmt: skip
                    outcome[p.slug] = "created"
                elif row[0] == document:
                    outcome[p.slug] = "unchanged"
                else:
                    # The dashboard may have closed the petition or raised its goal since the
                    # file was last imported: the file changes them only where its own value
                    # changed, so re-importing an edited text never reopens a closed petition.
                    before = json.loads(row[0])
                    goal = p.goal if before.get("goal") != p.goal else row[1]
                    status = p.status if before.get("status") != p.status else row[2]
                    await conn.execute(
                        _UPDATE_IMPORTED,
                        {"slug": p.slug, "document": document, "goal": goal,
                         "status": status, "now": now},
                    )  # fmt: skip
                    outcome[p.slug] = "updated"
                    petition_id = await conn.fetch_val(
                        "SELECT id FROM petitions WHERE slug = :slug", {"slug": p.slug}
                    )
                    # The webhook events of what the file changed, in this transaction.
                    if status == "closed" and row[2] != "closed":
                        await events.petition_closed(conn, int(petition_id), float(now))
                    if int(goal) != int(row[1]):
                        total = await conn.fetch_val(
                            "SELECT COALESCE(SUM(n), 0) FROM counters WHERE petition_id = :p",
                            {"p": petition_id},
                        )
                        await events.goal_changed(conn, int(petition_id), int(goal),
                                                  int(total), float(now))  # fmt: skip
            if any(v != "unchanged" for v in outcome.values()):
                await self._bump_revision(conn)
        return outcome

    async def _bump_revision(self, conn: Transaction) -> None:
        await conn.execute("UPDATE revisions SET n = n + 1 WHERE name = 'content'")

    async def content_revision(self) -> int:
        return int(await self.database.fetch_val("SELECT n FROM revisions WHERE name = 'content'"))

    async def petitions(self, partners: Iterable[Partner] = ()) -> list[Entry]:
        """Every petition as published, with those of `partners` that are its own."""
        rows = await self.database.fetch_all(
            "SELECT id, slug, document, goal, status, updated_at, shown_goal FROM petitions "
            "ORDER BY slug"
        )
        by_petition: dict[int, dict[str, Partner]] = {}
        for partner in partners:
            by_petition.setdefault(partner.petition_id, {})[partner.code] = partner
        return [
            Entry(
                id=r[0],
                slug=r[1],
                petition=Petition.from_document(json.loads(r[2])),
                goal=r[3],
                status=r[4],
                updated_at=r[5],
                partners=by_petition.get(r[0], {}),
                shown_goal=r[6],
            )
            for r in rows
        ]

    async def partners(self) -> list[Partner]:
        rows = await self.database.fetch_all(_PARTNERS + " ORDER BY petition_id, code")
        return [_partner(r) for r in rows]

    async def totals(self) -> dict[int, int]:
        """Every petition's signature count: sums of a few counter rows, no `COUNT(*)`."""
        rows = await self.database.fetch_all(
            "SELECT petition_id, SUM(n) FROM counters GROUP BY petition_id"
        )
        return {r[0]: int(r[1]) for r in rows}

    async def stored_signatures(self, petition_id: int) -> int:
        """A real `COUNT(*)` of signature rows in any state (quarantined and invalidated ones
        too), for checks and benchmarks, never per request."""
        return int(
            await self.database.fetch_val(
                "SELECT COUNT(*) FROM signatures WHERE petition_id = :p", {"p": petition_id}
            )
        )

    async def signatures_from_domain(self, petition_id: int, domain_key: str) -> int:
        """Counted signatures whose address is at the domain with this keyed hash."""
        return int(
            await self.database.fetch_val(
                "SELECT COUNT(*) FROM signatures WHERE petition_id = :p AND email_domain = :d "
                "AND status = 'counted'",
                {"p": petition_id, "d": domain_key},
            )
        )

    async def partner_totals(self, petition_id: int) -> dict[int | None, int]:
        """Signatures per partner id (None: no known partner), from the counters."""
        rows = await self.database.fetch_all(
            "SELECT partner_id, SUM(n) FROM counters WHERE petition_id = :p GROUP BY partner_id",
            {"p": petition_id},
        )
        return {(r[0] or None): int(r[1]) for r in rows}

    # Partners --------------------------------------------------------------------------------

    async def add_partner(
        self, petition_id: int, code: str, name: str, public_key: str | None = None
    ) -> Partner:
        """A new partner of a petition. Raises Conflict if the code is taken."""
        async with self.write() as conn:
            taken = await conn.fetch_val(
                "SELECT id FROM partners WHERE petition_id = :p AND code = :c",
                {"p": petition_id, "c": code},
            )
            if taken is not None:
                raise Conflict(f"partner code '{code}' is already used on this petition")
            await conn.execute(
                "INSERT INTO partners (petition_id, code, name, created_at) "
                "VALUES (:p, :c, :n, :t)",
                {"p": petition_id, "c": code, "n": name, "t": _now()},
            )
            if public_key is not None:
                await conn.execute(
                    "UPDATE partners SET public_key = :k WHERE petition_id = :p AND code = :c",
                    {"p": petition_id, "c": code, "k": public_key},
                )
            row = await conn.fetch_one(
                _PARTNERS + " WHERE petition_id = :p AND code = :c", {"p": petition_id, "c": code}
            )
            await self._bump_revision(conn)
        assert row is not None  # inserted just above, in this transaction
        return _partner(row)

    async def set_partner_key(self, petition_id: int, code: str, public_key: str) -> bool:
        """Seal this partner's consenting signers for `public_key` from now on (those before
        get no partner copy); False when there is no such partner."""
        async with self.write() as tx:
            changed = await tx.fetch_all(
                "UPDATE partners SET public_key = :k WHERE petition_id = :p AND code = :c "
                "RETURNING id",
                {"p": petition_id, "c": code, "k": public_key},
            )
            if changed:
                await self._bump_revision(tx)
        return bool(changed)

    async def petition_id(self, slug: str) -> int | None:
        value = await self.database.fetch_val(
            "SELECT id FROM petitions WHERE slug = :s", {"s": slug}
        )
        return None if value is None else int(value)

    async def purge_used_nonces(self, now: int) -> None:
        """Forget the nonces of tokens that have expired: they can no longer be replayed."""
        async with self.write() as tx:
            await tx.execute(_PURGE_NONCES, {"now": now})

    async def purge_mail_budgets(self, now: int) -> None:
        """Forget the daily mail budgets of the days before `now`'s (UTC): a budget limits one
        day's mails, and it keeps a digest of its address."""
        async with self.write() as tx:
            await tx.execute("DELETE FROM mail_budget WHERE day < :day", {"day": now // DAY})

    # --- Access keys, the dashboard and the export ------------------------------------------
    # Keys are read from here on every admin request, so a revoked key stops working at once on
    # every worker and host. Counts per day, per hour and per partner below are admin queries
    # over `signatures` (indexed by petition and time, and by partner and time): fine for a
    # dashboard, never on the public path, where counts come from `counters`. They read the
    # signatures that count (`status = 'counted'`): quarantined and invalidated ones are in
    # `moderation`'s queries only.

    async def add_access_key(
        self,
        key_id: str,
        role: str,
        secret_hash: str,
        label: str,
        *,
        petition_id: int | None = None,
        partner_id: int | None = None,
    ) -> None:
        async with self.write() as tx:
            await tx.execute(
                "INSERT INTO access_keys (id, role, petition_id, partner_id, secret_hash, "
                "label, created_at) VALUES (:id, :role, :petition, :partner, :hash, :label, :now)",
                {"id": key_id, "role": role, "petition": petition_id, "partner": partner_id,
                 "hash": secret_hash, "label": label, "now": _now()},
            )  # fmt: skip

    async def access_key(self, key_id: str) -> AccessKeyRow | None:
        row = await self.database.fetch_one(_ACCESS_KEYS + " WHERE k.id = :id", {"id": key_id})
        return None if row is None else AccessKeyRow(*_columns(row))

    async def access_keys(self) -> list[AccessKeyRow]:
        rows = await self.database.fetch_all(_ACCESS_KEYS + " ORDER BY k.created_at, k.id")
        return [AccessKeyRow(*_columns(r)) for r in rows]

    async def revoke_access_key(self, key_id: str) -> bool:
        """Revoke a key and end its dashboard sessions; False when there is no such key or it
        was revoked already."""
        async with self.write() as tx:
            revoked = await tx.fetch_val(
                "UPDATE access_keys SET revoked_at = :now WHERE id = :id AND revoked_at IS NULL "
                "RETURNING id",
                {"id": key_id, "now": _now()},
            )
            await sessions.end_for_keys(tx, [key_id])
        return revoked is not None

    async def revoke_access_keys_labelled(self, label: str) -> int:
        """Revoke every key with this label (the demo replaces its keys on each run)."""
        async with self.write() as tx:
            rows = await tx.fetch_all(
                "UPDATE access_keys SET revoked_at = :now WHERE label = :label "
                "AND revoked_at IS NULL RETURNING id",
                {"label": label, "now": _now()},
            )
            await sessions.end_for_keys(tx, [r[0] for r in rows])
        return len(rows)

    async def partner(self, petition_id: int, code: str) -> Partner | None:
        row = await self.database.fetch_one(
            _PARTNERS + " WHERE petition_id = :p AND code = :c", {"p": petition_id, "c": code}
        )
        return None if row is None else _partner(row)

    async def petition_partners(self, petition_id: int) -> list[Partner]:
        rows = await self.database.fetch_all(
            _PARTNERS + " WHERE petition_id = :p ORDER BY code", {"p": petition_id}
        )
        return [_partner(r) for r in rows]

    async def set_petition_status(self, petition_id: int, status: str) -> bool:
        """Open or close a petition; False when it already had that status."""
        return await self._set_petition("status", petition_id, status)

    async def set_petition_goal(self, petition_id: int, goal: int) -> bool:
        """Change a petition's goal; False when it already had that goal."""
        return await self._set_petition("goal", petition_id, goal)

    async def raise_shown_goal(self, petition_id: int, goal: int) -> None:
        """Remember the highest goal an `auto_goal` petition has shown. Not a content change:
        every worker computes the same step from its count, so none needs to reload."""
        async with self.write() as conn:
            await conn.execute(
                "UPDATE petitions SET shown_goal = :goal WHERE id = :id AND shown_goal < :goal",
                {"id": petition_id, "goal": goal},
            )

    async def _set_petition(self, column: str, petition_id: int, value: int | str) -> bool:
        assert column in ("status", "goal")
        async with self.write() as conn:
            values = {"id": petition_id, "value": value, "now": _now()}
            closing = ""
            if column == "status":
                closing, values["status"] = f", closed_at = {_CLOSED_AT}", value
            changed = await conn.fetch_val(
                f"UPDATE petitions SET {column} = :value, updated_at = :now{closing} "  # noqa: S608
                f"WHERE id = :id AND {column} <> :value RETURNING id",
                values,
            )
            if changed is not None:
                await self._bump_revision(conn)
                # The webhook events of the change, in its transaction.
                if column == "status" and value == "closed":
                    await events.petition_closed(conn, petition_id, float(values["now"]))
                elif column == "goal":
                    total = await conn.fetch_val(
                        "SELECT COALESCE(SUM(n), 0) FROM counters WHERE petition_id = :p",
                        {"p": petition_id},
                    )
                    now = float(values["now"])
                    await events.goal_changed(conn, petition_id, int(value), int(total), now)
        return changed is not None

    async def signature_buckets(
        self, petition_id: int, size: int, since: int, partner_id: int | None = None
    ) -> dict[int, int]:
        """Signatures per `size`-second bucket (UTC: buckets start at multiples of `size`) from
        `since` on, as {bucket start: count}; buckets without signatures are left out."""
        rows = await self.database.fetch_all(
            _BUCKETS[partner_id is not None],
            _values(p=petition_id, size=size, since=since, partner=partner_id),
        )
        return {int(r[0]): int(r[1]) for r in rows}

    async def partner_buckets(
        self, petition_id: int, size: int, since: int
    ) -> dict[int | None, dict[int, int]]:
        """`signature_buckets` for every partner at once (None: without a known partner), for
        the dashboard's partners compared over time."""
        rows = await self.database.fetch_all(
            _PARTNER_BUCKETS, _values(p=petition_id, size=size, since=since, partner=None)
        )
        out: dict[int | None, dict[int, int]] = {}
        for r in rows:
            key = None if r[0] is None else int(r[0])
            out.setdefault(key, {})[int(r[1])] = int(r[2])
        return out

    async def signatures_between(
        self, petition_id: int, since: int, until: int, partner_id: int | None = None
    ) -> int:
        """Signatures with `since <= created_at < until`."""
        value = await self.database.fetch_val(
            _BETWEEN[partner_id is not None],
            _values(p=petition_id, since=since, until=until, partner=partner_id),
        )
        return int(value)

    async def signature_span(
        self, petition_id: int, partner_id: int | None = None
    ) -> tuple[int | None, int | None]:
        """When the first and the last signature arrived (None, None without any)."""
        row = await self.database.fetch_one(
            _SPAN[partner_id is not None],
            _values(p=petition_id, partner=partner_id),
        )
        assert row is not None
        return row[0], row[1]

    async def partner_activity(self, petition_id: int) -> dict[int, PartnerActivity]:
        """Per known partner with signatures: the last signature and how many signers agreed to
        hear from that partner."""
        rows = await self.database.fetch_all(
            "SELECT partner_id, MAX(created_at), SUM(consent_partner) FROM signatures "
            "WHERE petition_id = :p AND partner_id IS NOT NULL AND status = 'counted' "
            "GROUP BY partner_id",
            {"p": petition_id},
        )
        return {r[0]: PartnerActivity(int(r[1]), int(r[2])) for r in rows}

    async def unknown_partner_activity(self, petition_id: int) -> list[UnknownPartner]:
        """Partner codes that arrived in snippets but belong to no partner: a typo, or a partner
        not added yet. Most signatures first."""
        rows = await self.database.fetch_all(
            "SELECT unknown_partner, COUNT(*), MAX(created_at) FROM signatures "
            "WHERE petition_id = :p AND unknown_partner IS NOT NULL AND status = 'counted' "
            "GROUP BY unknown_partner",
            {"p": petition_id},
        )
        found = [UnknownPartner(r[0], int(r[1]), int(r[2])) for r in rows]
        return sorted(found, key=lambda u: (-u.signatures, u.code))

    async def consenting_signers(self, partner_id: int) -> int:
        """Signers through this partner who agreed to hear from it."""
        value = await self.database.fetch_val(
            "SELECT COUNT(*) FROM signatures WHERE partner_id = :partner AND consent_partner = 1 "
            "AND status = 'counted'",
            {"partner": partner_id},
        )
        return int(value)

    async def latest_consenting(self, partner_id: int, limit: int) -> list[SignerRow]:
        """The newest signers through this partner who agreed to hear from it."""
        rows = await self.database.fetch_all(
            "SELECT created_at, name, country, lang FROM signatures "
            "WHERE partner_id = :partner AND consent_partner = 1 AND status = 'counted' "
            "ORDER BY created_at DESC, id DESC LIMIT :limit",
            {"partner": partner_id, "limit": limit},
        )
        return [SignerRow(*_columns(r)) for r in rows]

    async def export_rows(
        self, petition_id: int, partner_id: int | None = None, *, partner_box: bool = False
    ) -> AsyncIterator[ExportRow]:
        """A petition's signatures, oldest first, one row at a time (constant memory however
        many there are). With `partner_id`: only that partner's signers who agreed to hear
        from it; the consent filter is here, in the query, so no caller can forget it.

        The query runs in a task of its own that hands over batches through a small queue. A
        client that hangs up cancels whoever is sending its response, and with Starlette that
        cancellation repeats at every await: a cursor read in that task could not even roll
        back, and would keep its pooled connection forever. Here the reader is cancelled once,
        cleanly, and gives its connection back.
        """
        # Only signatures that count: a quarantined or invalidated one is no signature to hand
        # over (the dashboard shows how many there are).
        if partner_id is None:
            where, values = "s.petition_id = :p AND s.status = 'counted'", {"p": petition_id}
        else:
            where = (
                "s.petition_id = :p AND s.status = 'counted' AND s.partner_id = :partner "
                "AND s.consent_partner = 1"
            )
            values = {"p": petition_id, "partner": partner_id}
        # Sealed rows carry the owner's box, or the partner's copy when `partner_box` is asked.
        box = "s.partner_sealed" if partner_box else "s.sealed"
        if partner_box:  # signers sealed before the partner had a key have no copy for it
            where += " AND (s.sealed IS NULL OR s.partner_sealed IS NOT NULL)"
        batches: asyncio.Queue[list[ExportRow] | BaseException | None] = asyncio.Queue(EXPORT_QUEUE)

        async def read() -> None:
            batch: list[ExportRow] = []
            try:
                sql = _EXPORT.format(box=box) + where + _EXPORT_ORDER
                async for r in self._raw_rows(sql, values):
                    batch.append(ExportRow(
                        id=r[0], created_at=r[1], name=r[2], email=r[3], country=r[4],
                        comment=r[5], lang=r[6], partner_code=r[7], partner_name=r[8],
                        unknown_partner=r[9], consent_organiser=bool(r[10]),
                        consent_partner=bool(r[11]), consent_version=r[12], consent_text=r[13],
                        signed_at=r[14], sealed=r[15], consent_name_to_target=bool(r[16]),
                    ))  # fmt: skip
                    if len(batch) >= EXPORT_BATCH:
                        await batches.put(batch)
                        batch = []
            except Exception as exc:
                await batches.put(StorageUnavailable(describe(exc)))
                return
            await batches.put(batch)
            await batches.put(None)

        reader = asyncio.create_task(read())
        try:
            while (item := await batches.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                for row in item:
                    yield row
        finally:
            reader.cancel()  # a no-op once it has finished

    async def _raw_rows(self, sql: str, values: dict[str, Any]) -> AsyncIterator[Sequence[Any]]:
        """Rows as the driver gives them, read through a cursor (see `Engine.raw_rows`)."""
        async with self.database.connection() as conn:
            async for row in self.engine.raw_rows(conn.raw_connection, sql, values):
                yield row


# --- Rows of the dashboard and the export --------------------------------------------------------

_ACCESS_KEYS = """
SELECT k.id, k.role, k.petition_id, k.partner_id, k.secret_hash, k.label, k.created_at,
    k.revoked_at, pe.slug, pa.code, pa.name
FROM access_keys k
LEFT JOIN petitions pe ON pe.id = k.petition_id
LEFT JOIN partners pa ON pa.id = k.partner_id"""


def _with_partner(sql: str) -> dict[bool, str]:
    """A statement over a petition's signatures, and the same for one partner's."""
    return {False: sql.format(partner=""), True: sql.format(partner=" AND partner_id = :partner")}


_BUCKETS = _with_partner(
    "SELECT (created_at / :size) * :size AS bucket, COUNT(*) FROM signatures "
    "WHERE petition_id = :p AND status = 'counted' AND created_at >= :since{partner} "
    "GROUP BY bucket"
)
_PARTNER_BUCKETS = (
    "SELECT partner_id, (created_at / :size) * :size AS bucket, COUNT(*) FROM signatures "
    "WHERE petition_id = :p AND created_at >= :since GROUP BY partner_id, bucket"
)
_BETWEEN = _with_partner(
    "SELECT COUNT(*) FROM signatures "
    "WHERE petition_id = :p AND status = 'counted' AND created_at >= :since "
    "AND created_at < :until{partner}"
)
_SPAN = _with_partner(
    "SELECT MIN(created_at), MAX(created_at) FROM signatures "
    "WHERE petition_id = :p AND status = 'counted'{partner}"
)
_EXPORT = """
SELECT s.id, s.created_at, s.name, s.email, s.country, s.comment, s.lang, pa.code, pa.name,
    s.unknown_partner, s.consent_organiser, s.consent_partner, s.consent_version, c.text,
    s.signed_at, {box}, s.consent_name_to_target
FROM signatures s
LEFT JOIN partners pa ON pa.id = s.partner_id
LEFT JOIN consent_texts c ON c.version = s.consent_version
WHERE """
_EXPORT_ORDER = " ORDER BY s.created_at, s.id"


def _columns(row: Any) -> list[Any]:
    """A row's values in column order (a `databases` record iterates over its column names)."""
    return [row[i] for i in range(len(row))]


def _values(partner: int | None, **values: Any) -> dict[str, Any]:
    """Query values, with `partner` only when the query filters on it."""
    return values if partner is None else {**values, "partner": partner}


@dataclass(frozen=True)
class PartnerActivity:
    last_signature_at: int
    consenting: int  # signers who agreed to hear from the partner


@dataclass(frozen=True)
class UnknownPartner:
    code: str
    signatures: int
    last_signature_at: int


@dataclass(frozen=True)
class SignerRow:
    """A signer as a partner's page lists them: no email (pages never show one; the export,
    downloaded on purpose, has them)."""

    created_at: int
    name: str
    country: str | None
    lang: str


def _now() -> int:
    return int(time.time())
