"""Upgrading a database made before confirmation by email existed, on both engines: its rows
written as that release wrote them (migration 4 and its petition documents), then
`petition-widget serve` started on it, which migrates it, as an operator would upgrade.

The issue's contract: petitions already stored keep counting at once (`"none"`) until they
are imported again, and every signature already there is confirmed and counted.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx

from server.domain import access_keys
from server.domain.export import iso
from server.domain.petitions import Petition
from server.domain.validation import validate_signer
from server.store.schema import MIGRATIONS
from server.store.storage import Storage
from tests.support import db, live, petitions

EXAMPLE = petitions.example(confirmation="email")  # what its file says today
SIGN = f"/api/petitions/{EXAMPLE.slug}/signatures"
BEFORE_CONFIRMATION = 4  # migration 5 brought pending signatures, links and mail quotas
T = 1_700_000_000


def test_the_premise_migration_5_is_confirmation_by_email() -> None:
    steps = [step for step in MIGRATIONS[BEFORE_CONFIRMATION] if isinstance(step, str)]
    assert any("CREATE TABLE pending_signatures" in step for step in steps)
    assert not any(
        "pending_signatures" in step
        for migration in MIGRATIONS[:BEFORE_CONFIRMATION]
        for step in migration
        if isinstance(step, str)
    )


def old_document(petition: Petition) -> str:
    """The petition as that release stored it: no `confirmation`, no mail texts."""
    document: dict[str, Any] = petition.to_document()
    del document["confirmation"]
    for texts in document["texts"].values():
        del texts["mail_from_name"], texts["mail_subject"]
    return json.dumps(document, ensure_ascii=False, sort_keys=True)


async def make_old_database(
    url: str, signers: list[dict[str, str]], owner: access_keys.Key
) -> None:
    storage = Storage(url)
    await storage.connect()
    try:
        await db.migrate_to(storage, BEFORE_CONFIRMATION)
        async with storage.write() as tx:
            await tx.execute(
                "INSERT INTO petitions (slug, document, goal, status, created_at, updated_at) "
                "VALUES (:slug, :doc, :goal, 'open', :t, :t)",
                {"slug": EXAMPLE.slug, "doc": old_document(EXAMPLE), "goal": EXAMPLE.goal,
                 "t": T},
            )  # fmt: skip
            pid = await tx.fetch_val("SELECT id FROM petitions")
            await tx.execute(
                "INSERT INTO consent_texts (version, lang, text) VALUES ('v-old', 'en', 'I agree')"
            )
            for i, signer in enumerate(signers):
                key = validate_signer(signer).email_key  # ASCII: the same key as then
                await tx.execute(
                    "INSERT INTO signatures (petition_id, email_key, email, name, lang, "
                    "consent_version, consent_organiser, consent_partner, created_at) "
                    "VALUES (:p, :key, :email, :name, 'en', 'v-old', 1, 0, :t)",
                    {"p": pid, "key": key, "email": signer["email"], "name": signer["name"],
                     "t": T + i},
                )  # fmt: skip
            await tx.execute(
                "INSERT INTO counters (petition_id, partner_id, shard, n) VALUES (:p, 0, 0, :n)",
                {"p": pid, "n": len(signers)},
            )
        await storage.add_access_key(owner.id, access_keys.OWNER, owner.digest, "owner")
    finally:
        await storage.disconnect()


def test_an_upgraded_petition_keeps_counting_at_once_with_its_signatures_confirmed(
    tmp_path: Path, database_url: str
) -> None:
    signers = [live.new_signer("old") for _ in range(3)]
    owner = access_keys.generate(access_keys.OWNER)
    asyncio.run(make_old_database(database_url, signers, owner))
    # No mail settings: a petition that confirmed by email would keep `serve` from starting.
    with (
        live.LiveServer(database_url, tmp_path, SMTP_URL="", MAIL_FROM="", BASE_URL="") as srv,
        httpx.Client(base_url=srv.base_url, timeout=30) as client,
    ):
        assert client.get(f"/api/petitions/{EXAMPLE.slug}").json()["signatures"] == 3
        # Signing still counts at once: the published count plus one, and a withdrawal link.
        issued = client.get(f"/api/petitions/{EXAMPLE.slug}/token").json()["token"]
        signed = client.post(SIGN, json={"token": issued, **live.new_signer("new")})
        assert signed.status_code == 201, signed.text
        answer = signed.json()
        assert answer.pop("withdraw_url").startswith(f"{srv.base_url}/withdraw/")
        assert answer == {"status": "signed", "signatures": 4}
        # A signer from before is recognised as one who has signed: not counted twice.
        issued = client.get(f"/api/petitions/{EXAMPLE.slug}/token").json()["token"]
        again = client.post(SIGN, json={"token": issued, **signers[0]})
        assert again.status_code == 201 and again.json()["status"] == "signed"
        assert client.get(f"/api/petitions/{EXAMPLE.slug}").json()["signatures"] == 4
        # Every signature from before is confirmed, at the time it was made.
        exported = client.get(
            f"/admin/petitions/{EXAMPLE.slug}/export.json",
            headers={"Authorization": f"Bearer {owner.text}"},
        )
        assert exported.status_code == 200
        rows = {r["email"]: r for r in exported.json()}
        assert len(rows) == 4
        for i, signer in enumerate(signers):
            row = rows[signer["email"]]
            assert (row["signed_at"], row["confirmed_at"]) == (iso(T + i), iso(T + i))
            assert (row["name"], row["consent_organiser"]) == (signer["name"], True)

    async def leftovers() -> tuple[int, int]:
        storage = Storage(database_url)
        await storage.connect()
        try:
            waiting = await storage.database.fetch_val("SELECT COUNT(*) FROM pending_signatures")
            version = await storage.database.fetch_val("SELECT MAX(version) FROM schema_migrations")
            return int(waiting), int(version)
        finally:
            await storage.disconnect()

    assert asyncio.run(leftovers()) == (0, len(MIGRATIONS))  # nothing waits, all migrated
