"""What the store keeps of an address besides its signature, on both engines: digests of it in
`used_tokens.email_digest`, `mail_quota` and `mail_budget`, SHA-256 prefixes of its email key.
Whoever holds the database and the key behind email keys (`EMAIL_HASH_KEY`) can test a list of
addresses against them: they must not outlive what they serve. (The store is given keys; these
tests make them unkeyed, as the store does not care.)

- `signatures remove` (`confirmations.remove_signer`) forgets them with the signature: the
  petition's mail quota, every daily budget, and the digest on its used form tokens. The
  nonces themselves stay until their tokens expire: they are what stops a token's replay.
- The `purge` job forgets the mail budgets of past days: a budget limits one day's mails.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging

from server.store import confirmations, jobs
from server.store.clock import ManualClock
from server.store.registry import Registry
from server.store.runner import JobRunner
from server.store.signatures import DAY, email_digest
from server.store.storage import Storage
from tests.store.test_confirmations import (
    EXAMPLE,
    T,
    mails,
    opened,
    pending,
    run,
    sign,
    submission,
)

OTHER = dataclasses.replace(EXAMPLE, slug="another-petition")


async def digests(storage: Storage) -> dict[str, set[tuple[object, ...]]]:
    """Every row of the three tables that hold digests of addresses."""
    queries = {
        "used_tokens": "SELECT nonce, email_digest FROM used_tokens",
        "mail_quota": "SELECT petition_id, email_key FROM mail_quota",
        "mail_budget": "SELECT recipient, day FROM mail_budget",
    }
    found = {}
    for table, sql in queries.items():
        rows = await storage.database.fetch_all(sql)
        found[table] = {tuple(r[i] for i in range(2)) for r in rows}
    return found


def test_removing_a_signer_forgets_the_digests_of_their_address(database_url: str) -> None:
    async def check() -> None:
        storage, pid = await opened(database_url)
        await storage.import_petitions([OTHER])
        other = await storage.petition_id(OTHER.slug)
        assert other is not None
        asker, bystander = "asker@example.org", "bystander@example.org"
        yesterday = submission(pid, asker, "Asker", nonce="n-yesterday")
        today = submission(other, asker, "Asker", nonce="n-today")
        theirs = submission(pid, bystander, "Bystander", nonce="n-bystander")
        await sign(storage, yesterday, at=T - DAY)
        await sign(storage, today, theirs, at=T)
        assert yesterday.confirm is not None
        await confirmations.confirm(storage, yesterday.confirm.digest, T - DAY + 60)
        key, mine = yesterday.signer.email_key, email_digest(yesterday.signer.email_key)
        before = await digests(storage)
        assert {d for _, d in before["used_tokens"]} == {
            mine,
            email_digest(theirs.signer.email_key),
        }
        assert (pid, mine) in before["mail_quota"] and (other, mine) in before["mail_quota"]
        assert {(mine, T // DAY - 1), (mine, T // DAY)} <= before["mail_budget"]

        assert await confirmations.remove_signer(storage, pid, key) == (1, 0)
        after = await digests(storage)
        # The nonces stay, the address's digest on them goes; the bystander keeps theirs.
        assert after["used_tokens"] == {
            ("n-yesterday", None), ("n-today", None),
            ("n-bystander", email_digest(theirs.signer.email_key)),
        }  # fmt: skip
        # Its quota on this petition goes; on the other, where it still waits, it stays.
        assert after["mail_quota"] == before["mail_quota"] - {(pid, mine)}
        assert (other, mine) in after["mail_quota"]
        assert {r for r in after["mail_budget"] if r[0] == mine} == set()
        assert after["mail_budget"] == {r for r in before["mail_budget"] if r[0] != mine}
        assert await pending(storage) == ["Asker", "Bystander"]  # on the other petition

        # The kept nonce still stops a replay of the removed signer's token: nothing recorded,
        # and no mail (the token counts as used by someone else: 409).
        outbox = await storage.database.fetch_val("SELECT COUNT(*) FROM outbox")
        assert await sign(storage, yesterday, at=T + 60) == [None]
        assert await storage.database.fetch_val("SELECT COUNT(*) FROM outbox") == outbox
        assert await storage.stored_signatures(pid) == 0
        await storage.disconnect()

    run(check())


def test_the_purge_forgets_the_mail_budgets_of_past_days(database_url: str) -> None:
    async def check() -> None:
        storage, _ = await opened(database_url)
        today = T // DAY
        start = (today + 1) * DAY - jobs.PURGE_EVERY // 2  # one purge before midnight, one after
        async with storage.write() as tx:
            for day in (today - 30, today - 1, today):
                await tx.execute(
                    "INSERT INTO mail_budget (recipient, day, sent) VALUES ('d', :day, 2)",
                    {"day": day},
                )
        clock = ManualClock(start)
        runner = JobRunner(clock, logging.getLogger("test.jobs"))
        jobs.register(runner, storage, Registry(storage, 1.0, clock), clock)
        await runner.start()
        try:
            await clock.wait_for_sleepers(len(runner.status()))  # every job has run once, sleeps
            rows = await storage.database.fetch_all("SELECT day FROM mail_budget")
            assert [r[0] for r in rows] == [today]
            # The next purge is after midnight: today's budget is a past day's.
            await clock.advance(jobs.PURGE_EVERY)
            await clock.wait_for_sleepers(len(runner.status()))
            assert await storage.database.fetch_all("SELECT day FROM mail_budget") == []
            assert runner.status()["purge"].failures == 0
        finally:
            await runner.stop(1.0)
            await storage.disconnect()

    asyncio.run(check())


def test_removing_a_signer_deletes_their_unsent_mails(database_url: str) -> None:
    """A queued mail holds the address (encrypted) and links to a signature that is gone: it
    goes with the signature, pending or counted; the bystander's mail stays."""

    async def check() -> None:
        storage, pid = await opened(database_url)
        asker, bystander = "asker@example.org", "bystander@example.org"
        counted_one = submission(pid, asker, "Asker", nonce="n-1")
        await sign(storage, counted_one)
        assert counted_one.confirm is not None
        await confirmations.confirm(storage, counted_one.confirm.digest, T + 60)
        # A repeat queues an "already signed" mail; the bystander's confirmation waits too.
        await sign(storage, submission(pid, asker, "Asker", nonce="n-2"), at=T + 120)
        await sign(storage, submission(pid, bystander, "Bystander", nonce="n-3"), at=T + 120)
        assert [m["kind"] for m in await mails(storage)] == [
            "confirm", "already_signed", "confirm",
        ]  # fmt: skip

        assert await confirmations.remove_signer(storage, pid, counted_one.signer.email_key) == (
            1,
            0,
        )
        left = await mails(storage)
        assert [m["kind"] for m in left] == ["confirm"]
        assert "Asker" not in json.dumps(left) and left[0]["to"] == bystander
        await storage.disconnect()

    run(check())
