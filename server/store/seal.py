"""Sealing a plaintext database in place (`petition-widget seal`).

A database that took signatures before `SEALING_PUBLIC_KEY` was set holds names, emails and
comments in clear. This seals each such row as the writer would have (the owner's box, a
partner copy when the signer ticked a partner's box and that partner has a key, the domain's
keyed hash, times in clear rounded to the hour) and empties its clear columns. Pending
submissions are sealed too; their confirmation pages then show no name (the token that would
open a name box was never stored).

Pending rows go first: one confirmed by a running server while `seal` works on counted ones
would otherwise arrive in `signatures` in clear after they were done; the passes repeat until
nothing is left in clear. A partner copy is made for every consenting signer of a partner that
has a key when `seal` runs, older signers included: without sealing, that partner could
already download them in clear from its page.

The rest of what a sealed database keeps to the hour or encrypted follows: the expiries of
links and used form tokens (an exact expiry is an exact submission time plus a lifetime) are
rounded up to the hour, and queued mails are made as the writer of a sealed server makes
them: their address, links and `ref` sealed (`EmailHasher.seal_mail`; rows of the first sealed
release, whose `to_box` held only the address, are opened and sealed again), their times to
the hour; and so are webhook events not delivered yet (`events.sealed_payload`: the event in
its box, its signature's keyed tag, times to the hour).

In batches of `BATCH` rows, each its own transaction on the write path: a `kill -9` part-way
loses nothing, and running it again carries on where it stopped (a row is sealed when its
`sealed` column is set, and each update checks that it still is not). Then the files are
rebuilt (`Engine.rebuild_files`: SQLite's VACUUM and a truncated WAL, PostgreSQL's
VACUUM FULL), so the deleted plaintext leaves the disk too. Copies made before (backups, WAL
archives, replicas) keep it until they expire: docs/operations.md.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from server.domain import sealing
from server.domain.sealing import EmailHasher
from server.domain.validation import stored_email_key
from server.store import events
from server.store.storage import Storage

BATCH = 500

_TABLES = ("pending_signatures", "signatures")  # pending first: see the module
_MAIL_SECRETS = ("to", "confirm", "withdraw", "ref")  # what a sealed mail keeps in its box
# Expiries to the hour, rounded up (integer division on both engines: BIGINT columns).
_ROUND_EXPIRIES = [
    "UPDATE links SET expires_at = (expires_at + 3599) / 3600 * 3600 "
    "WHERE expires_at IS NOT NULL AND expires_at % 3600 <> 0",
    "UPDATE used_tokens SET expires_at = (expires_at + 3599) / 3600 * 3600 "
    "WHERE expires_at % 3600 <> 0",
]
PASSES = 3  # over both tables; more rows in clear after that: a server still writes them
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
    progress = Progress(0, await left(storage))
    report(progress)
    for _ in range(PASSES):
        if not await left(storage):
            break
        await _seal_rows(storage, owner, hasher, progress, report)
    async with storage.write() as tx:
        for statement in _ROUND_EXPIRIES:
            await tx.execute(statement)
        await _seal_mails(tx, hasher)
        await _seal_events(tx, hasher)
    await storage.engine.rebuild_files()
    return progress.done


async def _seal_mails(tx: Any, hasher: EmailHasher) -> None:
    """Queued mails as the writer of a sealed server queues them now: address, links' tokens
    and `ref` in the box (`EmailHasher.seal_mail`), the signer's keyed tag in clear for
    `signatures remove`, and the times to the hour. Rows written without the hash key keep
    the secrets in clear; rows of the first sealed release keep only the address in their
    `to_box` (the tokens and `ref` in clear); rows of the second keep `ref` in clear."""
    rows = await tx.fetch_all(
        "SELECT id, payload, created_at, available_at FROM outbox WHERE topic = 'mail'"
    )
    for row_id, text, created_at, available_at in rows:
        payload = json.loads(text)
        if not {*_MAIL_SECRETS, "to_box"} & set(payload):
            continue  # sealed already, or given up (an empty payload)
        secrets = _mail_secrets(payload, hasher)
        if secrets is None or "to" not in secrets:
            continue  # another key's box: the mail job gives it up, as it would anyway
        key = stored_email_key(secrets["to"]) or secrets["to"].lower()
        payload["box"] = hasher.seal_mail(secrets)
        payload["signer"] = hasher.mail_tag(hasher.email_key(key))
        values = {
            "p": json.dumps(payload),
            "id": row_id,
            "created": sealing.hour(int(created_at)),
            # Rounded down, so a mail due stays due.
            "available": sealing.hour(int(available_at)),
        }
        await tx.execute(
            "UPDATE outbox SET payload = :p, created_at = :created, available_at = :available "
            "WHERE id = :id",
            values,
        )


async def _seal_events(tx: Any, hasher: EmailHasher) -> None:
    """Webhook events still waiting (or failed, kept for the redeliver button) as a sealed
    server writes them (`events.sealed_payload`): the event in its box, times to the hour."""
    rows = await tx.fetch_all(
        "SELECT id, payload, created_at, available_at, failed_at FROM outbox "
        "WHERE topic = 'webhook'"
    )
    for row_id, text, created_at, available_at, failed_at in rows:
        payload = json.loads(text)
        if "box" in payload:
            continue  # sealed already
        values = {
            "p": json.dumps(events.sealed_payload(payload, hasher)),
            "id": row_id,
            "created": sealing.hour(int(created_at)),
            # Rounded down, so an event due stays due; a failed one stays never due.
            "available": int(available_at) if failed_at else sealing.hour(int(available_at)),
            "failed": None if failed_at is None else sealing.hour_after(int(failed_at)),
        }
        await tx.execute(
            "UPDATE outbox SET payload = :p, created_at = :created, available_at = :available, "
            "failed_at = :failed WHERE id = :id",
            values,
        )


def _mail_secrets(payload: dict[str, Any], hasher: EmailHasher) -> dict[str, str] | None:
    """Take out of `payload` what its box must hold: what its boxes hold and what it keeps in
    clear; None when a box does not open with this key."""
    secrets: dict[str, str] = {}
    for name in ("to_box", "box"):
        if isinstance(box := payload.pop(name, None), str):
            opened = hasher.open_mail(box)
            if opened is None:
                return None
            secrets.update(opened)
    secrets.update({k: str(payload.pop(k)) for k in _MAIL_SECRETS if k in payload})
    return secrets


async def _seal_rows(
    storage: Storage,
    owner: Any,
    hasher: EmailHasher,
    progress: Progress,
    report: Callable[[Progress], None],
) -> None:
    """One pass over both tables, in batches."""
    partner_keys: dict[str, Any] = {}
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
            progress.total = max(progress.total, progress.done)  # rows confirmed meanwhile
            report(progress)
