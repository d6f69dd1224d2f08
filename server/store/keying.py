"""Email keys made keyed, once: every stored address key becomes its HMAC under `EMAIL_HASH_KEY`.

Before the keyed hash, a signature's `email_key` was the normalised address itself, and the
digests of used tokens and mail quotas were unkeyed SHA-256 prefixes of it: anyone holding the
database and a list of addresses could match them. The first start with a hash key (every start
has one: generated on SQLite, required on PostgreSQL) rewrites them, in the migration's
transaction, and marks the database done (`revisions` row `email-keys`), so it happens once:

- `signatures` and `pending_signatures`: `email_key` becomes `EmailHasher.email_key` of the old
  key (which was the normalised address, so new and old signatures of one signer still meet);
- `used_tokens.email_digest`, `mail_quota` and `mail_budget`: each digest is replaced by the
  digest of its signer's new key where a signature or pending submission names it; the others
  (their signer gone: withdrawn, removed, never confirmed) cannot be recomputed and, being
  matchable, are dropped: a token's digest is cleared (a retry of it straddling the upgrade is
  then answered as a used token, 409, its first try standing), a quota row deleted (its
  address may get its few mails again).

A database keyed under one key and then served with another would let every address sign
again: that is why the key must never change (docs/operations.md).
"""

from __future__ import annotations

from server.domain.errors import PetitionWidgetError
from server.domain.sealing import EmailHasher
from server.store.engine import Transaction
from server.store.signatures import email_digest

MARKER = "email-keys"
FINGERPRINT = "email-hash-key"  # `EmailHasher.fingerprint` of the key the database is keyed by


class WrongHashKey(PetitionWidgetError):
    """The database was keyed under another `EMAIL_HASH_KEY`."""


async def key_email_addresses(tx: Transaction, hasher: EmailHasher) -> bool:
    """Re-key a database not keyed yet; returns whether it did anything. Raises WrongHashKey
    when the database is keyed under another key: under it no address would be recognised."""
    known = await tx.fetch_val("SELECT n FROM revisions WHERE name = :m", {"m": FINGERPRINT})
    if known is not None and int(known) != hasher.fingerprint:
        raise WrongHashKey(
            "this database was keyed under another EMAIL_HASH_KEY: with this one every address "
            "could sign again. Give the server and every command the key it was keyed with "
            "(see docs/operations.md)"
        )
    if known is None:
        await tx.execute(
            "INSERT INTO revisions (name, n) VALUES (:m, :n)",
            {"m": FINGERPRINT, "n": hasher.fingerprint},
        )
    done = await tx.fetch_val("SELECT n FROM revisions WHERE name = :m", {"m": MARKER})
    if done is not None:
        return False
    digests: dict[str, str] = {}  # old digest -> new
    for table in ("signatures", "pending_signatures"):
        for row in await tx.fetch_all(f"SELECT id, email_key FROM {table}"):  # noqa: S608
            new = hasher.email_key(row[1])
            old_digest, new_digest = email_digest(row[1]), email_digest(new)
            assert old_digest is not None and new_digest is not None
            digests[old_digest] = new_digest
            await tx.execute(
                f"UPDATE {table} SET email_key = :k WHERE id = :id",  # noqa: S608
                {"k": new, "id": row[0]},
            )
    for row in await tx.fetch_all(
        "SELECT DISTINCT email_digest FROM used_tokens WHERE email_digest IS NOT NULL"
    ):
        await tx.execute(
            "UPDATE used_tokens SET email_digest = :new WHERE email_digest = :old",
            {"old": row[0], "new": digests.get(row[0])},
        )
    for table, column in (("mail_quota", "email_key"), ("mail_budget", "recipient")):
        for row in await tx.fetch_all(f"SELECT DISTINCT {column} FROM {table}"):  # noqa: S608
            new_digest = digests.get(row[0])
            if new_digest is None:
                sql = f"DELETE FROM {table} WHERE {column} = :old"  # noqa: S608
                await tx.execute(sql, {"old": row[0]})
            else:
                sql = f"UPDATE {table} SET {column} = :new WHERE {column} = :old"  # noqa: S608
                await tx.execute(sql, {"old": row[0], "new": new_digest})
    await tx.execute("INSERT INTO revisions (name, n) VALUES (:m, 1)", {"m": MARKER})
    return True
