"""A migration step: every stored email key recomputed under the current rules (IDNA 2008).

Keys were made with Python's IDNA 2003 codec, which folded `faß.de` into `fass.de` and deleted
soft hyphens and joiners from domains, and invisible characters were let into local parts. The
key of each row of `signatures` and `pending_signatures` is made again from its `email` column
by `validation.stored_email_key`:

- an address valid now gets its key now; ASCII addresses keep theirs (both rules give the
  lower-cased local part and the lower-case domain), so only the few rows with a non-ASCII
  address change, and only those are written;
- an address refused now only for its invisible characters is kept, with the key of the
  address without them: it is the address the signer sees;
- an address refused now for another reason (a `.test` domain, a symbol IDNA 2008 refuses) is
  kept with the key it had: nothing better can be made of it, and it is unique already.

Two signatures of one petition may now share a key (`an\\u200bna@b.org` and `anna@b.org`): the
oldest (by `created_at`, then `id`) stays, as it counted first, and the later one is deleted
with its personal data, off the counter of its partner, so counts stay equal to rows; its
links are pointed at the one that stays (which takes the deleted one's `ref` if it had none),
so a withdrawal link in a mail still withdraws. Pending submissions have no unique key, and
confirming one already settles an address that has signed: they are only re-keyed.

Left as they are: `used_tokens.email_digest` (a digest of the old key) only tells a retry of
one token from a replay while the token lives (`TOKEN_LIFETIME`, 2 hours by default), so a
retry that straddles the upgrade, of an address whose key changed, is answered as a used token
(409) at worst, and the signature made by its first try stands; `mail_quota` and
`mail_budget` hold keys without an address to recompute them from, so such an address may get
its few mails again, `MAILS_PER_SIGNER` at most.

It runs inside the migration's transaction: rows are read by id in batches of `BATCH`, and only
the rows that change are kept in memory (few). Computing a key takes some 20 µs for an ASCII
address and 120 µs for an IDN one: a million signatures, mostly ASCII, take about half a
minute, once.
"""

from __future__ import annotations

import collections
import dataclasses

from server.domain.validation import stored_email_key
from server.store.engine import Transaction

BATCH = 1_000

_READ_SIGNATURES = """
SELECT id, petition_id, partner_id, email, email_key, created_at, ref FROM signatures
WHERE id > :after ORDER BY id LIMIT :limit"""
_READ_PENDING = """
SELECT id, petition_id, partner_id, email, email_key, created_at, ref FROM pending_signatures
WHERE id > :after ORDER BY id LIMIT :limit"""
_SET_PENDING_KEY = "UPDATE pending_signatures SET email_key = :key WHERE id = :id"
_SET_KEY = "UPDATE signatures SET email_key = :key WHERE id = :id"
_HOLDER = """
SELECT id, petition_id, partner_id, email, email_key, created_at, ref FROM signatures
WHERE petition_id = :p AND email_key = :key"""
_DELETE = "DELETE FROM signatures WHERE id = :id"
_MOVE_LINKS = "UPDATE links SET ref = :to WHERE ref = :ref"
_NAME = "UPDATE signatures SET ref = :ref WHERE id = :id"
_DECREMENT = """
INSERT INTO counters (petition_id, partner_id, shard, n) VALUES (:p, :partner, 0, :n)
ON CONFLICT (petition_id, partner_id, shard) DO UPDATE SET n = counters.n + excluded.n"""
# Registries never lower a count by themselves (see `confirmations._counts_went_down`).
_COUNTS_WENT_DOWN = "UPDATE revisions SET n = n + 1 WHERE name = 'content'"


@dataclasses.dataclass(frozen=True)
class _Row:
    id: int
    petition_id: int
    partner_id: int | None
    created_at: int
    ref: str | None
    key: str  # the key it is to have

    @property
    def age(self) -> tuple[int, int]:
        return self.created_at, self.id


async def rekey_email_addresses(tx: Transaction) -> None:
    """The migration step (see the module docstring); `tx` is the migration's transaction."""
    for row in await _changed(tx, _READ_PENDING):
        await tx.execute(_SET_PENDING_KEY, {"key": row.key, "id": row.id})
    await _rekey_signatures(tx, await _changed(tx, _READ_SIGNATURES))


async def _changed(tx: Transaction, query: str) -> list[_Row]:
    """The rows of a table whose key is to change, with the keys they are to have."""
    changed = []
    after = -1
    while rows := await tx.fetch_all(query, {"after": after, "limit": BATCH}):
        for id_, petition_id, partner_id, email, old_key, created_at, ref in rows:
            key = stored_email_key(email) or old_key
            if key != old_key:
                changed.append(_Row(id_, petition_id, partner_id, created_at, ref, key))
        after = rows[-1][0]
    return changed


async def _rekey_signatures(tx: Transaction, changed: list[_Row]) -> None:
    # First every changing row moves to a key of its own with no "@", which no address has:
    # keys that trade places (or follow one another) then never meet the unique constraint.
    for row in changed:
        await tx.execute(_SET_KEY, {"key": f"rekey {row.id}", "id": row.id})
    gone: collections.Counter[tuple[int, int]] = collections.Counter()
    for row in sorted(changed, key=lambda r: r.age):
        found = await tx.fetch_one(_HOLDER, {"p": row.petition_id, "key": row.key})
        if found is None:
            await tx.execute(_SET_KEY, {"key": row.key, "id": row.id})
            continue
        holder = _Row(found[0], found[1], found[2], found[5], found[6], found[4])
        keep, drop = (holder, row) if holder.age < row.age else (row, holder)
        await tx.execute(_DELETE, {"id": drop.id})
        if keep is row:
            await tx.execute(_SET_KEY, {"key": row.key, "id": row.id})
        if drop.ref is not None:
            if keep.ref is None:
                await tx.execute(_NAME, {"ref": drop.ref, "id": keep.id})
            else:
                await tx.execute(_MOVE_LINKS, {"to": keep.ref, "ref": drop.ref})
        gone[(drop.petition_id, drop.partner_id or 0)] += 1
    # Sorted, as the signing plan locks counter rows: the same order everywhere.
    for (petition_id, partner_id), n in sorted(gone.items()):
        await tx.execute(_DECREMENT, {"p": petition_id, "partner": partner_id, "n": -n})
    if gone:
        await tx.execute(_COUNTS_WENT_DOWN)
