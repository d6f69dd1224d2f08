"""Reading a database directly, for tests that check what survived a crash or a fault, and
making one as an older release left it. The server's own SQL is in server/store/storage.py;
these few queries exist only to audit it."""

from __future__ import annotations

import asyncio
from typing import Any
from unittest import mock

from server.store import storage as storage_module
from server.store.schema import MIGRATIONS
from server.store.signatures import email_digest
from server.store.storage import Storage

SLUG = "save-russian-lgbt-network"


async def _audit(url: str) -> dict[str, Any]:
    storage = Storage(url)
    await storage.connect()
    try:
        db = storage.database
        pid = await storage.petition_id(SLUG)
        assert pid is not None
        rows = await db.fetch_all(
            "SELECT email, email_key FROM signatures WHERE petition_id = :p", {"p": pid}
        )
        signers = {email_digest(r[1]) for r in rows}
        used = [r[0] for r in await db.fetch_all("SELECT email_digest FROM used_tokens")]
        report = {
            "counted": (await storage.totals()).get(pid, 0),
            "rows": await storage.stored_signatures(pid),
            "emails": {r[0] for r in rows},
            # A token claimed for someone whose signature is not there: half a write.
            "orphan_nonces": sum(digest not in signers for digest in used),
        }
        if storage.dialect == "sqlite":
            report["integrity"] = await db.fetch_val("PRAGMA integrity_check")
        else:
            await db.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
            # amcheck raises if a B-tree index (our unique constraints) is corrupt.
            checked = await db.fetch_all(
                "SELECT bt_index_check(c.oid, true) FROM pg_index i "
                "JOIN pg_class c ON c.oid = i.indexrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "JOIN pg_am a ON a.oid = c.relam WHERE n.nspname = 'public' AND a.amname = 'btree'"
            )
            report["integrity"] = "ok" if checked else "no indexes checked"
        return report
    finally:
        await storage.disconnect()


def audit(url: str) -> dict[str, Any]:
    """Counter total, signature rows, stored emails, nonces without a signature, integrity."""
    return asyncio.run(_audit(url))


async def migrate_to(storage: Storage, version: int) -> None:
    """Apply the migrations up to `version` and no further: the schema an older release left,
    for tests of what the later migrations do to its rows."""
    with mock.patch.object(storage_module, "MIGRATIONS", MIGRATIONS[:version]):
        assert await storage.migrate() == version
    found = await storage.database.fetch_val("SELECT MAX(version) FROM schema_migrations")
    assert found == version
