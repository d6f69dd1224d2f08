"""The migration that recomputes email keys (`rekey`), on both engines: a database is built at
the migration before it, filled with rows keyed the old way (IDNA 2003, invisible characters
let in), then brought to the last version."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

import pytest

from server.store.engine import Transaction
from server.store.rekey import rekey_email_addresses
from server.store.schema import MIGRATIONS
from server.store.storage import Storage
from tests.support import db, petitions

EXAMPLE = petitions.example()


#: The migration that re-keys: databases before it are made with the migrations before it.
REKEY = MIGRATIONS.index([rekey_email_addresses]) + 1


def test_rekey_is_migration_6() -> None:
    assert REKEY == 6


@dataclasses.dataclass
class Old:
    """A database at the migration before the re-keying, and a way to add rows to it."""

    storage: Storage
    petition: int
    other: int
    partner: int

    async def sign(
        self,
        email: str,
        key: str,
        at: int,
        *,
        petition: int | None = None,
        partner: int | None = None,
        ref: str | None = None,
        table: str = "signatures",
    ) -> None:
        petition = petition or self.petition
        if table == "pending_signatures":  # a submission is always named
            ref = ref or secrets.token_urlsafe(8)
        async with self.storage.write() as tx:
            await tx.execute(
                f"INSERT INTO {table} (petition_id, partner_id, email_key, email, name, lang, "
                "consent_version, consent_organiser, consent_partner, created_at, ref) "
                "VALUES (:p, :partner, :key, :email, 'Signer', 'en', 'v1', 1, 0, :at, :ref)",
                {"p": petition, "partner": partner, "key": key, "email": email, "at": at,
                 "ref": ref},
            )  # fmt: skip
            if table == "signatures":  # counted, on some shard, as the signing plan does
                await tx.execute(
                    "INSERT INTO counters (petition_id, partner_id, shard, n) "
                    "VALUES (:p, :partner, 3, 1) ON CONFLICT (petition_id, partner_id, shard) "
                    "DO UPDATE SET n = counters.n + excluded.n",
                    {"p": petition, "partner": partner or 0},
                )

    async def link(self, digest: str, ref: str) -> None:
        async with self.storage.write() as tx:
            await tx.execute(
                "INSERT INTO links (digest, kind, petition_id, ref) "
                "VALUES (:d, 'withdraw', :p, :ref)",
                {"d": digest, "p": self.petition, "ref": ref},
            )

    async def keys(self, table: str = "signatures", petition: int | None = None) -> set[str]:
        rows = await self.storage.database.fetch_all(
            f"SELECT email_key FROM {table} WHERE petition_id = :p",
            {"p": petition or self.petition},
        )
        return {r[0] for r in rows}

    async def emails(self, petition: int | None = None) -> dict[str, str]:
        rows = await self.storage.database.fetch_all(
            "SELECT email, email_key FROM signatures WHERE petition_id = :p",
            {"p": petition or self.petition},
        )
        return {r[0]: r[1] for r in rows}

    async def check_counts(self) -> None:
        """Counters equal rows, per petition and per partner."""
        for petition in (self.petition, self.other):
            rows = await self.storage.database.fetch_all(
                "SELECT partner_id, COUNT(*) FROM signatures WHERE petition_id = :p "
                "GROUP BY partner_id",
                {"p": petition},
            )
            counted = await self.storage.partner_totals(petition)
            assert {k: v for k, v in counted.items() if v} == {r[0]: int(r[1]) for r in rows}
            assert await self.storage.stored_signatures(petition) == sum(counted.values())


def with_old_database(url: str, body: Callable[[Old], Awaitable[None]]) -> None:
    async def run() -> None:
        storage = Storage(url)
        await storage.connect()
        try:
            await db.migrate_to(storage, REKEY - 1)
            # The petitions and partners tables as they were then (without the columns of
            # later migrations): written by hand.
            async with storage.write() as tx:
                for slug in (EXAMPLE.slug, "other"):
                    document = json.dumps(dataclasses.replace(EXAMPLE, slug=slug).to_document())
                    await tx.execute(
                        "INSERT INTO petitions (slug, document, goal, status, created_at, "
                        "updated_at) VALUES (:s, :d, 100, 'open', 0, 0)",
                        {"s": slug, "d": document},
                    )
            petition = await storage.petition_id(EXAMPLE.slug)
            other = await storage.petition_id("other")
            assert petition is not None and other is not None
            async with storage.write() as tx:
                partner = await tx.fetch_val(
                    "INSERT INTO partners (petition_id, code, name, created_at) "
                    "VALUES (:p, 'partner', 'A partner', 0) RETURNING id",
                    {"p": petition},
                )
            await body(Old(storage, petition, other, int(partner)))
        finally:
            await storage.disconnect()

    asyncio.run(run())


async def upgrade(old: Old) -> None:
    assert await old.storage.migrate() == len(MIGRATIONS)
    version = await old.storage.database.fetch_val("SELECT MAX(version) FROM schema_migrations")
    assert version == len(MIGRATIONS)


def test_keys_are_recomputed_under_idna_2008(database_url: str) -> None:
    async def body(old: Old) -> None:
        await old.sign("a@faß.de", "a@fass.de", 100)
        await old.sign("Anna@ÖBB.at", "anna@xn--bb-eka.at", 110)  # the same under both
        await old.sign("Plain@Example.org", "plain@example.org", 120)
        await old.sign("p@faß.de", "p@fass.de", 130, table="pending_signatures")
        await upgrade(old)
        assert await old.emails() == {
            "a@faß.de": "a@xn--fa-hia.de",
            "Anna@ÖBB.at": "anna@xn--bb-eka.at",
            "Plain@Example.org": "plain@example.org",
        }
        assert await old.keys("pending_signatures") == {"p@xn--fa-hia.de"}
        # The owner of fass.de, taken for a repeat before, can now sign.
        await old.sign("a@fass.de", "a@fass.de", 200)
        assert await old.storage.stored_signatures(old.petition) == 4
        await old.check_counts()

    with_old_database(database_url, body)


def test_invisible_characters_are_stripped_from_stored_keys(database_url: str) -> None:
    async def body(old: Old) -> None:
        await old.sign("bo\u200bb@example.org", "bo\u200bb@example.org", 100)
        await old.sign("c@fa\u200css.de", "c@fass.de", 110)  # IDNA 2003 deleted the joiner
        await old.sign("x@b.test", "x@b.test", 120)  # refused now for another reason: kept
        await old.sign(
            "d\u2060@example.org", "d\u2060@example.org", 130, table="pending_signatures"
        )
        await upgrade(old)
        assert await old.keys() == {"bob@example.org", "c@fass.de", "x@b.test"}
        assert await old.keys("pending_signatures") == {"d@example.org"}
        await old.check_counts()

    with_old_database(database_url, body)


def test_signatures_that_now_share_a_key_are_merged_and_counts_follow(database_url: str) -> None:
    async def body(old: Old) -> None:
        # The row keyed the old way is older: it stays, the later look-alike goes.
        await old.sign("anna@example.org", "anna@example.org", 100)
        await old.sign("an\u200bna@example.org", "an\u200bna@example.org", 200, partner=old.partner)
        # The changed row is older: it stays, with the key; the later one goes, off its counter.
        await old.sign("b\u00adob@example.org", "b\u00adob@example.org", 50, ref="bob-old")
        await old.sign("bob@example.org", "bob@example.org", 300, partner=old.partner, ref="bob")
        await old.link("bob-withdraw", "bob")
        # Kept without a ref of its own, it takes the deleted one's, so its link still works.
        await old.sign("c\u200d@example.org", "c\u200d@example.org", 60)
        await old.sign("c@example.org", "c@example.org", 400, ref="c")
        await old.link("c-withdraw", "c")
        # The same address in another petition is another signature.
        await old.sign("an\u2060na@example.org", "an\u2060na@example.org", 10, petition=old.other)
        assert (await old.storage.totals())[old.petition] == 6
        await old.check_counts()

        await upgrade(old)
        assert await old.emails() == {
            "anna@example.org": "anna@example.org",
            "b\u00adob@example.org": "bob@example.org",
            "c\u200d@example.org": "c@example.org",
        }
        assert await old.keys(petition=old.other) == {"anna@example.org"}
        assert (await old.storage.totals())[old.petition] == 3
        assert (await old.storage.partner_totals(old.petition)).get(old.partner, 0) == 0
        await old.check_counts()
        links = await old.storage.database.fetch_all("SELECT digest, ref FROM links")
        refs = await old.storage.database.fetch_all(
            "SELECT email_key, ref FROM signatures WHERE petition_id = :p", {"p": old.petition}
        )
        assert {r[0]: r[1] for r in links} == {"bob-withdraw": "bob-old", "c-withdraw": "c"}
        assert {r[0]: r[1] for r in refs}["c@example.org"] == "c"

    with_old_database(database_url, body)


def test_keys_that_trade_places_meet_no_constraint(database_url: str) -> None:
    # Rows stored with each other's keys (a slip of an older version): each gets its own.
    async def body(old: Old) -> None:
        await old.sign("r@example.org", "s@example.org", 100)
        await old.sign("s@example.org", "r@example.org", 200)
        await upgrade(old)
        assert await old.emails() == {
            "r@example.org": "r@example.org",
            "s@example.org": "s@example.org",
        }
        await old.check_counts()

    with_old_database(database_url, body)


def test_many_rows_are_read_in_batches(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("server.store.rekey.BATCH", 3)

    async def body(old: Old) -> None:
        for i in range(10):
            await old.sign(f"n{i}@faß.de", f"n{i}@fass.de", i)
        await upgrade(old)
        assert await old.keys() == {f"n{i}@xn--fa-hia.de" for i in range(10)}
        await old.check_counts()

    with_old_database(database_url, body)


def test_the_step_changes_nothing_the_second_time(database_url: str) -> None:
    async def body(old: Old) -> None:
        await old.sign("an\u200bna@faß.de", "an\u200bna@fass.de", 100)
        await old.sign("anna@faß.de", "anna@fass.de", 200)  # not a repeat before: now it is
        await upgrade(old)
        before = await old.emails()
        statements: list[str] = []

        class Recording:
            def __init__(self, tx: Transaction) -> None:
                self.tx = tx

            async def execute(self, sql: str, values: Mapping[str, Any] | None = None) -> None:
                statements.append(sql)
                await self.tx.execute(sql, values)

            def __getattr__(self, name: str) -> Any:
                return getattr(self.tx, name)

        async with old.storage.write() as tx:
            await rekey_email_addresses(cast(Transaction, Recording(tx)))
        assert statements == []
        assert before == await old.emails() == {"an\u200bna@faß.de": "anna@xn--fa-hia.de"}
        await old.check_counts()

    with_old_database(database_url, body)
