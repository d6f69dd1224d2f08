"""The registry on a real SQLite file: what a refresh loads, and which counts it keeps."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from server.domain.signatures import Consent, NewSignature
from server.domain.validation import validate_signer
from server.store.registry import Registry
from server.store.storage import Storage
from server.store.writer import create_writer
from tests.support import backends, petitions

EXAMPLE = petitions.example()
OTHER = dataclasses.replace(EXAMPLE, slug="another-petition")


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


def signature(petition_id: int, email: str) -> NewSignature:
    return NewSignature(
        petition_id=petition_id,
        partner_id=None,
        unknown_partner=None,
        nonce=secrets.token_urlsafe(12),
        nonce_expires_at=2_000_000_000,
        signer=validate_signer({"name": "Test Signer", "email": email}),
        lang="en",
        consent=Consent("en", "consent text"),
    )


async def prepared(tmp_path: Path) -> tuple[Storage, int, int]:
    """A SQLite file with two petitions; their ids."""
    storage = Storage(backends.sqlite_url(tmp_path))
    await storage.connect()
    await storage.migrate()
    await storage.import_petitions([EXAMPLE, OTHER])
    pid = await storage.petition_id(EXAMPLE.slug)
    other = await storage.petition_id(OTHER.slug)
    assert pid is not None and other is not None
    return storage, pid, other


async def sign(storage: Storage, petition_id: int, *emails: str) -> None:
    """Signatures taken by "another worker": through a writer the registry knows nothing of."""
    writer = create_writer(storage)
    await writer.start()
    try:
        await asyncio.gather(*(writer.submit(signature(petition_id, e)) for e in emails))
    finally:
        await writer.close()


async def erase_counts(storage: Storage, petition_id: int, n: int) -> None:
    """Lower a petition's counters to `n`, as erasing signatures does, without a new revision."""
    async with storage.write() as tx:
        await tx.execute("DELETE FROM counters WHERE petition_id = :p", {"p": petition_id})
        await tx.execute(
            "INSERT INTO counters (petition_id, partner_id, shard, n) VALUES (:p, 0, 0, :n)",
            {"p": petition_id, "n": n},
        )


def test_registry_refresh_loads_petitions_partners_and_counts(tmp_path: Path) -> None:
    async def check() -> None:
        storage, pid, other = await prepared(tmp_path)
        partner = await storage.add_partner(pid, "ngo-a", "NGO A")
        await sign(storage, pid, "a@example.org", "b@example.org")
        registry = Registry(storage, refresh_interval=1.0)
        assert registry.get(EXAMPLE.slug) is None  # nothing before the first refresh

        await registry.refresh()
        entry = registry.get(EXAMPLE.slug)
        second = registry.get(OTHER.slug)
        assert entry is not None and second is not None
        assert (entry.id, entry.goal, entry.status) == (pid, EXAMPLE.goal, EXAMPLE.status)
        assert entry.petition == EXAMPLE
        assert entry.partners == {"ngo-a": partner}
        assert second.id == other and second.partners == {}
        assert registry.get("no-such-petition") is None
        assert registry.count(entry) == 2
        assert registry.count(second) == 0  # no counter row yet
        assert registry.revision == await storage.content_revision()
        assert registry.failure is None
        await storage.disconnect()

    run(check())


def test_registry_note_count_never_lowers_a_count(tmp_path: Path) -> None:
    async def check() -> None:
        storage, pid, _ = await prepared(tmp_path)
        registry = Registry(storage, refresh_interval=1.0)
        await registry.refresh()
        entry = registry.get(EXAMPLE.slug)
        assert entry is not None
        registry.note_count(pid, 5)
        assert registry.count(entry) == 5
        registry.note_count(pid, 3)  # an older commit answered late
        assert registry.count(entry) == 5
        registry.note_count(pid, 7)
        assert registry.count(entry) == 7
        await storage.disconnect()

    run(check())


def test_registry_unchanged_revision_keeps_the_higher_count(tmp_path: Path) -> None:
    async def check() -> None:
        storage, pid, other = await prepared(tmp_path)
        registry = Registry(storage, refresh_interval=1.0)
        await registry.refresh()
        entry, second = registry.get(EXAMPLE.slug), registry.get(OTHER.slug)
        assert entry is not None and second is not None

        # Signatures of other workers show up at the next refresh.
        await sign(storage, pid, "a@example.org", "b@example.org")
        await sign(storage, other, "c@example.org")
        await registry.refresh()
        assert (registry.count(entry), registry.count(second)) == (2, 1)

        # A count this process saw committed is newer than a read that lags behind it.
        registry.note_count(pid, 9)
        await registry.refresh()
        assert registry.count(entry) == 9
        await erase_counts(storage, other, 0)
        await registry.refresh()
        assert registry.count(second) == 1  # same revision: never lower
        assert registry.get(EXAMPLE.slug) is entry  # and petitions are not reloaded
        await storage.disconnect()

    run(check())


def test_registry_new_partner_reloads_and_takes_counts_as_they_are(tmp_path: Path) -> None:
    async def check() -> None:
        storage, pid, _ = await prepared(tmp_path)
        await sign(storage, pid, "a@example.org", "b@example.org", "c@example.org")
        registry = Registry(storage, refresh_interval=1.0)
        await registry.refresh()
        before = registry.get(EXAMPLE.slug)
        assert before is not None and registry.count(before) == 3
        revision = registry.revision

        await erase_counts(storage, pid, 1)  # an owner erased signatures
        partner = await storage.add_partner(pid, "ngo-b", "NGO B")  # a new revision
        await registry.refresh()
        entry = registry.get(EXAMPLE.slug)
        assert entry is not None
        assert registry.revision > revision
        assert entry.partners == {"ngo-b": partner}
        assert registry.count(entry) == 1  # content changed: the count may go down
        await storage.disconnect()

    run(check())


def test_registry_edited_petition_reloads_and_takes_counts_as_they_are(tmp_path: Path) -> None:
    async def check() -> None:
        storage, pid, other = await prepared(tmp_path)
        await sign(storage, pid, "a@example.org", "b@example.org")
        await sign(storage, other, "c@example.org")
        registry = Registry(storage, refresh_interval=1.0)
        await registry.refresh()
        registry.note_count(pid, 40)  # held higher than the database's

        raised = dataclasses.replace(EXAMPLE, goal=EXAMPLE.goal + 1_000)
        assert await storage.import_petitions([raised]) == {EXAMPLE.slug: "updated"}
        await registry.refresh()
        entry, second = registry.get(EXAMPLE.slug), registry.get(OTHER.slug)
        assert entry is not None and second is not None
        assert entry.goal == EXAMPLE.goal + 1_000
        assert entry.petition == raised
        assert registry.count(entry) == 2  # as stored, not the 40 held
        assert registry.count(second) == 1

        # Re-importing the same file changes nothing: the held count is kept again.
        assert await storage.import_petitions([raised]) == {EXAMPLE.slug: "unchanged"}
        registry.note_count(pid, 40)
        await registry.refresh()
        assert registry.count(entry) == 40
        await storage.disconnect()

    run(check())


def test_registry_keeps_a_commit_noted_while_a_refresh_reads(tmp_path: Path) -> None:
    """A commit noted while a refresh after a content change was reading the totals was
    overwritten by those older totals, so the public count dipped until the next refresh."""

    async def check() -> None:
        storage, pid, _ = await prepared(tmp_path)
        await sign(storage, pid, "a@example.org")
        registry = Registry(storage, 1.0)
        await registry.refresh()
        read_totals = storage.totals

        async def totals_while_a_commit_lands() -> dict[int, int]:
            found = await read_totals()
            registry.note_count(pid, 2)  # this process committed a second signature meanwhile
            return found

        storage.totals = totals_while_a_commit_lands  # type: ignore[method-assign]
        await storage.add_partner(pid, "ngo", "NGO")  # a content change
        await registry.refresh()
        (entry,) = [e for e in registry.entries.values() if e.id == pid]
        assert "ngo" in entry.partners
        assert registry.count(entry) == 2
        await storage.disconnect()

    run(check())


def test_auto_goal_climbs_its_steps_is_stored_and_never_comes_down(tmp_path: Path) -> None:
    """`auto_goal` through the registry, with refreshes driven by hand (no clock, no polling):
    the step above the count once it reaches the goal, kept in the database on the next
    refresh, after a withdrawal and across a restart; a raised stored goal still wins."""
    climbing = dataclasses.replace(EXAMPLE, slug="climbing", goal=100, auto_goal=True)

    async def check() -> None:
        storage = Storage(backends.sqlite_url(tmp_path))
        await storage.connect()
        await storage.migrate()
        await storage.import_petitions([climbing])
        pid = await storage.petition_id("climbing")
        assert pid is not None
        registry = Registry(storage, refresh_interval=1.0)
        await registry.refresh()
        entry = registry.get("climbing")
        assert entry is not None
        for count, shown in ((0, 100), (99, 100), (100, 200), (250, 500), (999, 1000),
                             (1000, 2000), (12_345, 20_000)):  # fmt: skip
            registry.note_count(pid, count)
            assert registry.goal(entry) == shown, count
        await registry.refresh()  # the step shown is stored
        (stored,) = [e for e in await storage.petitions() if e.id == pid]
        assert stored.shown_goal == 20_000
        registry.lower_count(pid, 10)  # withdrawals: the goal stays
        assert registry.goal(entry) == 20_000
        restarted = Registry(storage, refresh_interval=1.0)
        await restarted.refresh()
        again = restarted.get("climbing")
        assert again is not None and restarted.goal(again) == 20_000
        assert await storage.set_petition_goal(pid, 30_000)  # the dashboard raises the goal
        await restarted.refresh()
        raised = restarted.get("climbing")
        assert raised is not None and restarted.goal(raised) == 30_000
        await storage.disconnect()

    run(check())
