"""Sealing a plaintext database in place (`petition-widget seal`).

A database that took signatures before `SEALING_PUBLIC_KEY` was set holds names, emails and
comments in clear. This seals each such row as the writer would have (the owner's box, a
partner copy when the signer ticked a partner's box and that partner has a key, the domain's
keyed hash, times in clear rounded to the hour) and empties its clear columns. Pending
submissions are sealed too; their confirmation pages then show no name (the token that would
open a name box was never stored).

In batches of `BATCH` rows, each its own transaction on the write path: a `kill -9` part-way
loses nothing, and running it again carries on where it stopped (a row is sealed when its
`sealed` column is set, and each update checks that it still is not). Then the files are
rebuilt (`Engine.rebuild_files`: SQLite's VACUUM and a truncated WAL, PostgreSQL's
VACUUM FULL), so the deleted plaintext leaves the disk too. Copies made before (backups, WAL
archives, replicas) keep it until they expire: docs/operations.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from server.domain import sealing
from server.domain.sealing import EmailHasher
from server.domain.validation import stored_email_key
from server.store.storage import Storage

BATCH = 500

_TABLES = ("signatures", "pending_signatures")
_LEFT = "SELECT COUNT(*) FROM {table} WHERE sealed IS NULL AND email <> ''"
_NEXT = """
SELECT s.id, s.name, s.email, s.comment, s.created_at, {signed_at}, s.consent_partner,
    p.public_key
FROM {table} s LEFT JOIN partners p ON p.id = s.partner_id
WHERE s.sealed IS NULL AND s.email <> '' ORDER BY s.id LIMIT :n"""
_SEAL = """
UPDATE {table} SET name = '', email = '', comment = NULL, sealed = :box,
    partner_sealed = :copy, email_domain = :domain, created_at = :created{signed_at}
WHERE id = :id AND sealed IS NULL"""


@dataclasses.dataclass
class Progress:
    done: int
    total: int


async def left(storage: Storage) -> int:
    """Rows of personal data still in clear."""
    total = 0
    for table in _TABLES:
        total += int(await storage.database.fetch_val(_LEFT.format(table=table)))
    return total


async def seal_database(
    storage: Storage,
    owner_key: str,
    hasher: EmailHasher,
    report: Callable[[Progress], None] = lambda _: None,
) -> int:
    """Seal every plaintext row (see the module); returns how many this run sealed."""
    owner = sealing.parse_public_key(owner_key)
    partner_keys: dict[str, Any] = {}
    progress = Progress(0, await left(storage))
    report(progress)
    for table in _TABLES:
        counted = table == "signatures"  # pending rows have no `signed_at` of their own
        select = _NEXT.format(table=table, signed_at="s.signed_at" if counted else "NULL")
        update = _SEAL.format(table=table, signed_at=", signed_at = :signed" if counted else "")
        while True:
            rows = await storage.database.fetch_all(select, {"n": BATCH})
            if not rows:
                break
            async with storage.write() as tx:
                for r in rows:
                    row_id, name, email, comment, created_at, signed_at = (r[i] for i in range(6))
                    partner = None
                    if r[6] and r[7]:
                        partner = partner_keys.get(r[7])
                        if partner is None:
                            partner = partner_keys[r[7]] = sealing.parse_public_key(r[7])
                    exact = int(signed_at or created_at)
                    box = sealing.seal_signer(
                        name=name, email=email, comment=comment, signed_at=exact,
                        owner=owner, partner=partner,
                    )  # fmt: skip
                    key = stored_email_key(email) or email.lower()
                    await tx.execute(
                        update,
                        {
                            "id": row_id,
                            "box": box.owner,
                            "copy": box.partner,
                            "domain": hasher.domain_key(key.rpartition("@")[2]),
                            "created": sealing.hour(int(created_at)),
                            **({"signed": sealing.hour(exact)} if counted else {}),
                        },
                    )
            progress.done += len(rows)
            report(progress)
    await storage.engine.rebuild_files()
    return progress.done
