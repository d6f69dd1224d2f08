"""Storage: every SQL statement of the project, for SQLite and PostgreSQL alike.

The same statements run on both engines (standard SQL plus `ON CONFLICT` and `RETURNING`,
which both understand); the few type names that differ are filled into the schema. Most work
goes through `databases`. The one hot path, recording signatures, is written once as a *plan*
(a generator that yields statements and receives their first row) and run by two small drivers:
a long-lived sqlite3 connection held by the SQLite writer, and an asyncpg connection from the
`databases` pool. See `writer` for why signatures are committed in groups.

Counts are kept in `counters`, one row per petition, partner and shard, updated in the same
transaction as the signatures they count and summed on read: the count is exact without a
`COUNT(*)`, and writers on several processes or hosts spread over shards instead of queueing
on one row.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import json
import logging
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Generator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import databases

from server.domain.access import AccessKeyRow
from server.domain.errors import StorageUnavailable
from server.domain.export import ExportRow
from server.domain.partners import Partner
from server.domain.petitions import Petition
from server.domain.signatures import NewSignature
from server.settings import sqlite_path
from server.store.schema import _TYPES, MIGRATIONS

logger = logging.getLogger("petition_widget.storage")

BUSY_TIMEOUT_MS = 5_000
POSTGRES_SHARDS = 16
CONNECT_TIMEOUT = 5.0  # seconds to open a PostgreSQL connection
COMMAND_TIMEOUT = 10.0  # seconds one PostgreSQL statement may take before it is an error
_MIGRATION_LOCK = 7_346_221  # PostgreSQL advisory lock id held while migrating
EXPORT_BATCH = 500  # rows an export's reader hands over at a time
EXPORT_QUEUE = 4  # batches it may read ahead of the response


# --- Connections ------------------------------------------------------------------------------


def _sqlite_pragmas(synchronous: str) -> list[str]:
    return [
        f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}",
        # FULL: a commit reaches the disk before we answer, so it survives a power loss. With
        # WAL and group commit that costs one fsync per group, not per signature.
        f"PRAGMA synchronous = {synchronous.upper()}",
        "PRAGMA foreign_keys = ON",
    ]


def _sqlite_factory(synchronous: str) -> type[sqlite3.Connection]:
    """A sqlite3 connection class that sets our pragmas on every new connection: `databases`
    opens one per task, and per-connection pragmas would otherwise be lost."""
    pragmas = _sqlite_pragmas(synchronous)

    class Connection(sqlite3.Connection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            for pragma in pragmas:
                self.execute(pragma)

    return Connection


def open_sqlite(path: Path, synchronous: str) -> sqlite3.Connection:
    """A plain sqlite3 connection with our pragmas, in autocommit mode (we say BEGIN)."""
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, factory=_sqlite_factory(synchronous)
    )
    return conn


# --- asyncpg parameters -----------------------------------------------------------------------

_NAMED_PARAM = re.compile(r"(?<!:):([a-z_][a-z0-9_]*)")


@dataclass(frozen=True)
class _Positional:
    sql: str
    names: tuple[str, ...]


_positional_cache: dict[str, _Positional] = {}


def _positional(sql: str) -> _Positional:
    """`:name` parameters rewritten as asyncpg's `$1`, once per statement."""
    found = _positional_cache.get(sql)
    if found is None:
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            if match[1] not in names:
                names.append(match[1])
            return f"${names.index(match[1]) + 1}"

        found = _positional_cache[sql] = _Positional(_NAMED_PARAM.sub(number, sql), tuple(names))
    return found


# --- Signing plan -----------------------------------------------------------------------------

Statement = tuple[str, dict[str, Any]]
Plan = Generator[Statement, Any, list[int | None]]

_CLAIM_NONCE = """
INSERT INTO used_tokens (nonce, email_digest, expires_at) VALUES (:nonce, :digest, :expires_at)
ON CONFLICT (nonce) DO NOTHING RETURNING nonce"""
_NONCE_OWNER = """
SELECT u.email_digest, s.email_key FROM used_tokens u
LEFT JOIN signatures s ON s.id = u.signature_id WHERE u.nonce = :nonce"""
_INSERT_SIGNATURE = """
INSERT INTO signatures (petition_id, partner_id, unknown_partner, email_key, email, name,
    country, comment, lang, consent_version, consent_organiser, consent_partner, created_at)
VALUES (:petition_id, :partner_id, :unknown_partner, :email_key, :email, :name,
    :country, :comment, :lang, :consent_version, :consent_organiser, :consent_partner, :now)
ON CONFLICT (petition_id, email_key) DO NOTHING RETURNING id"""
_ADD_CONSENT = """
INSERT INTO consent_texts (version, lang, text) VALUES (:version, :lang, :text)
ON CONFLICT (version) DO NOTHING"""
_BUMP_COUNTER = """
INSERT INTO counters (petition_id, partner_id, shard, n)
VALUES (:petition_id, :partner_id, :shard, :n)
ON CONFLICT (petition_id, partner_id, shard) DO UPDATE SET n = counters.n + excluded.n"""
_PETITION_TOTAL = "SELECT COALESCE(SUM(n), 0) FROM counters WHERE petition_id = :petition_id"
_PURGE_NONCES = "DELETE FROM used_tokens WHERE expires_at < :now"


def sign_plan(
    batch: Sequence[NewSignature], *, shard: int, now: int, known_consents: set[str]
) -> Plan:
    """Record a group of signatures in one transaction; the plan's value has, per signature,
    the petition's count after the group, or None when its token was already used by someone
    else.

    A token's nonce is claimed first, with a digest of the signer's email key, so a replayed
    token records nothing; the same person (same email key) signing again is stopped by the
    unique constraint and not counted twice; a retry of the very same submission finds its own
    nonce and digest and gets the same answer.
    """
    increments: collections.Counter[tuple[int, int]] = collections.Counter()
    accepted = [False] * len(batch)
    for consent in {s.consent for s in batch if s.consent.version not in known_consents}:
        yield _ADD_CONSENT, {"version": consent.version, "lang": consent.lang, "text": consent.text}
    for i, s in enumerate(batch):
        digest = email_digest(s.signer.email_key)
        claim = {"nonce": s.nonce, "digest": digest, "expires_at": s.nonce_expires_at}
        if (yield _CLAIM_NONCE, claim) is None:
            owner = yield _NONCE_OWNER, {"nonce": s.nonce}
            accepted[i] = owner is not None and digest in (owner[0], email_digest(owner[1]))
            continue
        if (yield _INSERT_SIGNATURE, _signature_values(s, now)) is not None:
            increments[(s.petition_id, s.partner_id or 0)] += 1
        accepted[i] = True
    # Sorted, so that concurrent transactions lock counter rows in the same order.
    for (petition_id, partner_id), n in sorted(increments.items()):
        values = {"petition_id": petition_id, "partner_id": partner_id, "shard": shard, "n": n}
        yield _BUMP_COUNTER, values
    totals = {}
    for petition_id in sorted({s.petition_id for s in batch}):
        row = yield _PETITION_TOTAL, {"petition_id": petition_id}
        totals[petition_id] = int(row[0])
    return [totals[s.petition_id] if ok else None for s, ok in zip(batch, accepted, strict=True)]


def email_digest(email_key: str | None) -> str | None:
    """What a used token keeps of its signer: enough to recognise a retry, not the address."""
    if email_key is None:
        return None
    return hashlib.sha256(email_key.encode()).hexdigest()[:32]


def _signature_values(s: NewSignature, now: int) -> dict[str, Any]:
    signer = s.signer
    return {
        "petition_id": s.petition_id,
        "partner_id": s.partner_id,
        "unknown_partner": s.unknown_partner,
        "email_key": signer.email_key,
        "email": signer.email,
        "name": signer.name,
        "country": signer.country,
        "comment": signer.comment,
        "lang": s.lang,
        "consent_version": s.consent.version,
        "consent_organiser": int(signer.consent_organiser),
        "consent_partner": int(signer.consent_partner),
        "now": now,
    }


def run_plan_sqlite(conn: sqlite3.Connection, plan: Plan) -> list[int | None]:
    """Run a plan's statements on a sqlite3 connection, inside a transaction the caller holds
    (the writer begins it IMMEDIATE, so it never fails half-way for lack of the write lock)."""
    row = None
    while True:
        try:
            sql, params = plan.send(row)
        except StopIteration as done:
            return list(done.value)
        row = conn.execute(sql, params).fetchone()


async def run_plan_asyncpg(conn: Any, plan: Plan) -> list[int | None]:
    """Run a plan on an asyncpg connection, in one transaction."""
    async with conn.transaction():
        row = None
        while True:
            try:
                sql, params = plan.send(row)
            except StopIteration as done:
                return list(done.value)
            statement = _positional(sql)
            row = await conn.fetchrow(statement.sql, *(params[n] for n in statement.names))


def purge_used_nonces_sqlite(conn: sqlite3.Connection, now: int) -> None:
    conn.execute(_PURGE_NONCES, {"now": now})


# --- The storage object -------------------------------------------------------------------------


@dataclass(frozen=True)
class PetitionRow:
    id: int
    slug: str
    petition: Petition
    goal: int
    status: str
    updated_at: int


class Storage:
    def __init__(self, database_url: str, *, synchronous: str = "full") -> None:
        self.url = database_url
        self.dialect = "sqlite" if database_url.startswith("sqlite") else "postgresql"
        self.synchronous = synchronous
        options: dict[str, Any]
        if self.dialect == "sqlite":
            options = {"factory": _sqlite_factory(synchronous)}
        else:
            # A hung server or network must end in an error, not in requests waiting forever.
            options = {
                "min_size": 1,
                "max_size": 10,
                "timeout": CONNECT_TIMEOUT,
                "command_timeout": COMMAND_TIMEOUT,
            }
        self.database = databases.Database(database_url, **options)

    @property
    def sqlite_file(self) -> Path:
        return sqlite_path(self.url)

    async def connect(self) -> None:
        try:
            await self.database.connect()
        except Exception as exc:
            raise StorageUnavailable(describe(exc)) from None

    async def disconnect(self) -> None:
        await self.database.disconnect()

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[databases.core.Connection]:
        """A transaction that will write. On SQLite it takes the write lock at BEGIN, as a
        deferred transaction that reads first can fail later with "database is locked"."""
        async with self.database.connection() as conn:
            if self.dialect == "sqlite":
                await conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    await conn.execute("ROLLBACK")
                    raise
                await conn.execute("COMMIT")
            else:
                async with conn.transaction():
                    yield conn

    async def migrate(self) -> int:
        """Apply the migrations this database lacks; returns the schema version."""
        if self.dialect == "sqlite":
            # Stored in the file: set once, it holds for every later connection.
            await self.database.execute("PRAGMA journal_mode = WAL")
        async with self.write() as conn:
            if self.dialect == "postgresql":
                await conn.execute(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)"
            )
            current = await conn.fetch_val("SELECT MAX(version) FROM schema_migrations") or 0
            for version, statements in enumerate(MIGRATIONS, start=1):
                if version <= current:
                    continue
                for statement in statements:
                    await conn.execute(statement.format(**_TYPES[self.dialect]))
                await conn.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (:v, :t)",
                    {"v": version, "t": _now()},
                )
                logger.info("applied database migration %d", version)
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
                        "updated_at) VALUES (:slug, :document, :goal, :status, :now, :now)",
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
                        "UPDATE petitions SET document = :document, goal = :goal, "
                        "status = :status, updated_at = :now WHERE slug = :slug",
                        {"slug": p.slug, "document": document, "goal": goal,
                         "status": status, "now": now},
                    )  # fmt: skip
                    outcome[p.slug] = "updated"
            if any(v != "unchanged" for v in outcome.values()):
                await self._bump_revision(conn)
        return outcome

    async def _bump_revision(self, conn: databases.core.Connection) -> None:
        await conn.execute("UPDATE revisions SET n = n + 1 WHERE name = 'content'")

    async def content_revision(self) -> int:
        return int(await self.database.fetch_val("SELECT n FROM revisions WHERE name = 'content'"))

    async def petitions(self) -> list[PetitionRow]:
        rows = await self.database.fetch_all(
            "SELECT id, slug, document, goal, status, updated_at FROM petitions ORDER BY slug"
        )
        return [
            PetitionRow(
                id=r[0],
                slug=r[1],
                petition=Petition.from_document(json.loads(r[2])),
                goal=r[3],
                status=r[4],
                updated_at=r[5],
            )
            for r in rows
        ]

    async def partners(self) -> list[Partner]:
        rows = await self.database.fetch_all(
            "SELECT id, petition_id, code, name FROM partners ORDER BY petition_id, code"
        )
        return [Partner(r[0], r[1], r[2], r[3]) for r in rows]

    async def totals(self) -> dict[int, int]:
        """Every petition's signature count: sums of a few counter rows, no `COUNT(*)`."""
        rows = await self.database.fetch_all(
            "SELECT petition_id, SUM(n) FROM counters GROUP BY petition_id"
        )
        return {r[0]: int(r[1]) for r in rows}

    async def stored_signatures(self, petition_id: int) -> int:
        """A real `COUNT(*)` of signature rows, for checks and benchmarks, never per request."""
        return int(
            await self.database.fetch_val(
                "SELECT COUNT(*) FROM signatures WHERE petition_id = :p", {"p": petition_id}
            )
        )

    async def partner_totals(self, petition_id: int) -> dict[int | None, int]:
        """Signatures per partner id (None: no known partner), from the counters."""
        rows = await self.database.fetch_all(
            "SELECT partner_id, SUM(n) FROM counters WHERE petition_id = :p GROUP BY partner_id",
            {"p": petition_id},
        )
        return {(r[0] or None): int(r[1]) for r in rows}

    async def unknown_partner_codes(self, petition_id: int) -> dict[str, int]:
        """Partner codes that arrived in snippets but belong to no partner, with their counts."""
        rows = await self.database.fetch_all(
            "SELECT unknown_partner, COUNT(*) FROM signatures "
            "WHERE petition_id = :p AND unknown_partner IS NOT NULL GROUP BY unknown_partner",
            {"p": petition_id},
        )
        return {r[0]: int(r[1]) for r in rows}

    # Partners --------------------------------------------------------------------------------

    async def add_partner(self, petition_id: int, code: str, name: str) -> Partner:
        """A new partner of a petition. Raises ValueError if the code is taken."""
        async with self.write() as conn:
            taken = await conn.fetch_val(
                "SELECT id FROM partners WHERE petition_id = :p AND code = :c",
                {"p": petition_id, "c": code},
            )
            if taken is not None:
                raise ValueError(f"partner code '{code}' is already used on this petition")
            await conn.execute(
                "INSERT INTO partners (petition_id, code, name, created_at) "
                "VALUES (:p, :c, :n, :t)",
                {"p": petition_id, "c": code, "n": name, "t": _now()},
            )
            row = await conn.fetch_one(
                "SELECT id, petition_id, code, name FROM partners "
                "WHERE petition_id = :p AND code = :c",
                {"p": petition_id, "c": code},
            )
            await self._bump_revision(conn)
        assert row is not None  # inserted just above, in this transaction
        return Partner(row[0], row[1], row[2], row[3])

    async def petition_id(self, slug: str) -> int | None:
        value = await self.database.fetch_val(
            "SELECT id FROM petitions WHERE slug = :s", {"s": slug}
        )
        return None if value is None else int(value)

    async def sign_postgres(self, batch: Sequence[NewSignature], *, shard: int, now: int,
                            known_consents: set[str]) -> list[int | None]:  # fmt: skip
        """Record a group of signatures on PostgreSQL (see `sign_plan`)."""
        async with self.database.connection() as conn:
            plan = sign_plan(batch, shard=shard, now=now, known_consents=known_consents)
            return await run_plan_asyncpg(conn.raw_connection, plan)

    async def purge_used_nonces(self, now: int) -> None:
        await self.database.execute(_PURGE_NONCES, {"now": now})

    # --- Access keys, the dashboard and the export ------------------------------------------
    # Keys are read from here on every admin request, so a revoked key stops working at once on
    # every worker and host. Counts per day, per hour and per partner below are admin queries
    # over `signatures` (indexed by petition and time, and by partner and time): fine for a
    # dashboard, never on the public path, where counts come from `counters`.

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
        await self.database.execute(
            "INSERT INTO access_keys (id, role, petition_id, partner_id, secret_hash, label, "
            "created_at) VALUES (:id, :role, :petition, :partner, :hash, :label, :now)",
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
        """Revoke a key; False when there is no such key or it was revoked already."""
        revoked = await self.database.fetch_val(
            "UPDATE access_keys SET revoked_at = :now WHERE id = :id AND revoked_at IS NULL "
            "RETURNING id",
            {"id": key_id, "now": _now()},
        )
        return revoked is not None

    async def revoke_access_keys_labelled(self, label: str) -> int:
        """Revoke every key with this label (the demo replaces its keys on each run)."""
        rows = await self.database.fetch_all(
            "UPDATE access_keys SET revoked_at = :now WHERE label = :label "
            "AND revoked_at IS NULL RETURNING id",
            {"label": label, "now": _now()},
        )
        return len(rows)

    async def partner(self, petition_id: int, code: str) -> Partner | None:
        row = await self.database.fetch_one(
            "SELECT id, petition_id, code, name FROM partners WHERE petition_id = :p AND code = :c",
            {"p": petition_id, "c": code},
        )
        return None if row is None else Partner(row[0], row[1], row[2], row[3])

    async def petition_partners(self, petition_id: int) -> list[Partner]:
        rows = await self.database.fetch_all(
            "SELECT id, petition_id, code, name FROM partners WHERE petition_id = :p ORDER BY code",
            {"p": petition_id},
        )
        return [Partner(r[0], r[1], r[2], r[3]) for r in rows]

    async def set_petition_status(self, petition_id: int, status: str) -> bool:
        """Open or close a petition; False when it already had that status."""
        return await self._set_petition("status", petition_id, status)

    async def set_petition_goal(self, petition_id: int, goal: int) -> bool:
        """Change a petition's goal; False when it already had that goal."""
        return await self._set_petition("goal", petition_id, goal)

    async def _set_petition(self, column: str, petition_id: int, value: int | str) -> bool:
        assert column in ("status", "goal")
        async with self.write() as conn:
            changed = await conn.fetch_val(
                f"UPDATE petitions SET {column} = :value, updated_at = :now "  # noqa: S608
                f"WHERE id = :id AND {column} <> :value RETURNING id",
                {"id": petition_id, "value": value, "now": _now()},
            )
            if changed is not None:
                await self._bump_revision(conn)
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
            "WHERE petition_id = :p AND partner_id IS NOT NULL GROUP BY partner_id",
            {"p": petition_id},
        )
        return {r[0]: PartnerActivity(int(r[1]), int(r[2])) for r in rows}

    async def unknown_partner_activity(self, petition_id: int) -> list[UnknownPartner]:
        """Partner codes that arrived in snippets but belong to no partner: a typo, or a partner
        not added yet. Most signatures first."""
        rows = await self.database.fetch_all(
            "SELECT unknown_partner, COUNT(*), MAX(created_at) FROM signatures "
            "WHERE petition_id = :p AND unknown_partner IS NOT NULL GROUP BY unknown_partner",
            {"p": petition_id},
        )
        found = [UnknownPartner(r[0], int(r[1]), int(r[2])) for r in rows]
        return sorted(found, key=lambda u: (-u.signatures, u.code))

    async def consenting_signers(self, partner_id: int) -> int:
        """Signers through this partner who agreed to hear from it."""
        value = await self.database.fetch_val(
            "SELECT COUNT(*) FROM signatures WHERE partner_id = :partner AND consent_partner = 1",
            {"partner": partner_id},
        )
        return int(value)

    async def latest_consenting(self, partner_id: int, limit: int) -> list[SignerRow]:
        """The newest signers through this partner who agreed to hear from it."""
        rows = await self.database.fetch_all(
            "SELECT created_at, name, country, lang FROM signatures "
            "WHERE partner_id = :partner AND consent_partner = 1 "
            "ORDER BY created_at DESC, id DESC LIMIT :limit",
            {"partner": partner_id, "limit": limit},
        )
        return [SignerRow(*_columns(r)) for r in rows]

    async def export_rows(
        self, petition_id: int, partner_id: int | None = None
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
        if partner_id is None:
            where, values = "s.petition_id = :p", {"p": petition_id}
        else:
            where = "s.petition_id = :p AND s.partner_id = :partner AND s.consent_partner = 1"
            values = {"p": petition_id, "partner": partner_id}
        batches: asyncio.Queue[list[ExportRow] | BaseException | None] = asyncio.Queue(EXPORT_QUEUE)

        async def read() -> None:
            batch: list[ExportRow] = []
            try:
                async for r in self._raw_rows(_EXPORT + where + _EXPORT_ORDER, values):
                    batch.append(ExportRow(
                        id=r[0], created_at=r[1], name=r[2], email=r[3], country=r[4],
                        comment=r[5], lang=r[6], partner_code=r[7], partner_name=r[8],
                        unknown_partner=r[9], consent_organiser=bool(r[10]),
                        consent_partner=bool(r[11]), consent_version=r[12], consent_text=r[13],
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
        """Rows as the driver gives them, read through a cursor: `databases`' own row objects
        cost more than the rest of an export together."""
        async with self.database.connection() as conn:
            raw = conn.raw_connection
            if self.dialect == "sqlite":
                async with raw.execute(sql, values) as cursor:
                    async for row in cursor:
                        yield row
            else:
                statement = _positional(sql)
                args = [values[name] for name in statement.names]
                async with raw.transaction():  # asyncpg cursors live in a transaction
                    async for row in raw.cursor(statement.sql, *args, prefetch=EXPORT_BATCH):
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
    "WHERE petition_id = :p AND created_at >= :since{partner} GROUP BY bucket"
)
_BETWEEN = _with_partner(
    "SELECT COUNT(*) FROM signatures "
    "WHERE petition_id = :p AND created_at >= :since AND created_at < :until{partner}"
)
_SPAN = _with_partner(
    "SELECT MIN(created_at), MAX(created_at) FROM signatures WHERE petition_id = :p{partner}"
)
_EXPORT = """
SELECT s.id, s.created_at, s.name, s.email, s.country, s.comment, s.lang, pa.code, pa.name,
    s.unknown_partner, s.consent_organiser, s.consent_partner, s.consent_version, c.text
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


def is_unavailable(exc: BaseException) -> bool:
    """Whether an error means the database cannot be used right now (down, unreachable, hung,
    locked, full, read-only), as opposed to a bug or a refused row: answered `503`, not `500`."""
    if isinstance(exc, OSError | TimeoutError | sqlite3.OperationalError):
        return True
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - a SQLite-only install
        return False
    return isinstance(
        exc,
        asyncpg.PostgresConnectionError
        | asyncpg.InterfaceError
        | asyncpg.CannotConnectNowError
        | asyncpg.InsufficientResourcesError
        | asyncpg.OperatorInterventionError,
    )


def describe(exc: BaseException) -> str:
    """An exception's kind, for logs and health checks, without its message: database errors
    can quote the values of a failed row, and those may be a signer's email."""
    code = getattr(exc, "sqlstate", None) or getattr(exc, "sqlite_errorname", None)
    return f"{type(exc).__name__} ({code})" if code else type(exc).__name__


def _now() -> int:
    return int(time.time())
