"""Email keys made keyed once, on both engines: a database that held plain keys (the
normalised addresses) is re-keyed at the first start with `EMAIL_HASH_KEY`, its unkeyed digests
replaced or dropped; and a database keyed under one key refuses another."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from server.domain import sealing
from server.store.keying import WrongHashKey
from server.store.signatures import email_digest
from server.store.storage import Storage
from tests.support import petitions

HASHER = sealing.EmailHasher(b"a" * 32)


def test_plain_keys_are_keyed_once_and_another_key_is_refused(database_url: str) -> None:
    async def run() -> None:
        storage = Storage(database_url)
        await storage.connect()
        try:
            await storage.migrate()  # no hasher: as a release before keyed hashes left it
            await storage.import_petitions([petitions.example()])
            pid = await storage.petition_id(petitions.example().slug)
            plain = "ann@example.org"
            old_digest = hashlib.sha256(plain.encode()).hexdigest()[:32]
            async with storage.write() as tx:
                await tx.execute(
                    "INSERT INTO signatures (petition_id, email_key, email, name, lang, "
                    "consent_version, consent_organiser, consent_partner, created_at, ref) "
                    "VALUES (:p, :k, :k, 'Ann', 'en', 'v', 0, 0, 1, 'r1')",
                    {"p": pid, "k": plain},
                )
                for nonce, digest in (("n1", old_digest), ("n2", "f" * 32)):
                    await tx.execute(
                        "INSERT INTO used_tokens (nonce, email_digest, expires_at) "
                        "VALUES (:n, :d, 9999999999)",
                        {"n": nonce, "d": digest},
                    )
                for key in (old_digest, "e" * 32):
                    await tx.execute(
                        "INSERT INTO mail_quota (petition_id, email_key, sent) VALUES (:p, :k, 1)",
                        {"p": pid, "k": key},
                    )
            await storage.migrate(HASHER)
            db = storage.database
            keyed = HASHER.email_key(plain)
            assert await db.fetch_val("SELECT email_key FROM signatures") == keyed
            tokens = {
                r[0]: r[1]
                for r in await db.fetch_all("SELECT nonce, email_digest FROM used_tokens")
            }
            assert tokens == {"n1": email_digest(keyed), "n2": None}  # the unknown one cleared
            quotas = [r[0] for r in await db.fetch_all("SELECT email_key FROM mail_quota")]
            assert quotas == [email_digest(keyed)]  # the unknown one deleted
            await storage.migrate(HASHER)  # once: a second start changes nothing
            assert await db.fetch_val("SELECT email_key FROM signatures") == keyed
            with pytest.raises(WrongHashKey):
                await storage.migrate(sealing.EmailHasher(b"b" * 32))
            assert await db.fetch_val("SELECT email_key FROM signatures") == keyed
        finally:
            await storage.disconnect()

    asyncio.run(run())
