"""Confirming and withdrawing signatures through the links in mails and answers, and forgetting
submissions that were never confirmed. Each change is one transaction on the write path.

- **Confirm**: the pending submission moves to `signatures` (placed at its confirmation time,
  `signed_at` keeping when it was sent, with its state: `abuse`) and onto the counters, unless
  it was quarantined (or invalidated while it waited): then its confirmation is recorded, and
  it counts once an owner restores it. If the address had already
  signed, or has several pending submissions (a squatter's among them), the one signature that
  counts stays, every other pending submission of that address is deleted with its personal
  data, and their links are pointed at the signature that counts: the mailbox owner, who got
  all those mails, sees the same success from each of them.
- **Withdraw**: the signature (or pending submission) goes with its personal data, and off the
  counter it was on when it counted (a quarantined or invalidated one was on none; every
  worker's registry is told that a count went down). Its links stay, holding nothing
  personal, so a repeat shows the same success; a link whose submission never counted (a
  repeat signer's) removes nothing.
- **Expire**: pending submissions older than `CONFIRM_LIFETIME` are deleted by a job.
- **Unmailable**: a submission whose confirmation mail the mail server refused for good can
  never be confirmed, so it goes at once (`forget_unmailable`), not a week later.

The answers say only what a page may show: never whether someone else used the address.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from typing import Literal

from server.domain import abuse, links, sealing
from server.store import events
from server.store.engine import Transaction
from server.store.signatures import MAIL_TOPIC, email_digest
from server.store.storage import Storage

#: What a link can lead to.
Found = Literal["pending", "counted", "gone"]
KEEP_EXPIRED_LINKS = 30 * 86_400  # an expired link is answered "expired" (410) this long


@dataclasses.dataclass(frozen=True)
class LinkTarget:
    kind: str  # links.CONFIRM or links.WITHDRAW
    petition_id: int
    expired: bool
    found: Found  # the submission it names: still pending, counting, or no longer there
    # What a confirmation page shows of a pending submission (to the mailbox's owner alone).
    name: str = ""
    lang: str = ""  # the language of the form it was sent from
    consent_organiser: bool = False
    consent_partner: bool = False
    consent_name_to_target: bool = False
    partner_id: int | None = None
    # Sealed data: the name is in `name_box`, which only the link's own token opens.
    name_box: str | None = None


@dataclasses.dataclass(frozen=True)
class Change:
    """What a confirmation or withdrawal did: the petition's count after it (for the registry),
    when a counter moved."""

    petition_id: int
    count: int | None = None


async def find(storage: Storage, digest: str, now: int) -> LinkTarget | None:
    """The link with this digest, and what it leads to; None for no such link."""
    async with storage.session():
        link = await storage.database.fetch_one(
            "SELECT kind, petition_id, ref, expires_at FROM links WHERE digest = :d",
            {"d": digest},
        )
        if link is None:
            return None
        kind, petition_id, ref, expires_at = link[0], link[1], link[2], link[3]
        expired = expires_at is not None and expires_at < now
        pending = await storage.database.fetch_one(
            "SELECT name, consent_organiser, consent_partner, partner_id, lang, name_box, "
            "consent_name_to_target FROM pending_signatures WHERE ref = :ref",
            {"ref": ref},
        )
        if pending is not None:
            return LinkTarget(
                kind, petition_id, expired, "pending",
                name=pending[0], consent_organiser=bool(pending[1]),
                consent_partner=bool(pending[2]), partner_id=pending[3], lang=pending[4],
                name_box=pending[5], consent_name_to_target=bool(pending[6]),
            )  # fmt: skip
        counted = await storage.database.fetch_val(
            "SELECT id FROM signatures WHERE ref = :ref", {"ref": ref}
        )
    return LinkTarget(kind, petition_id, expired, "counted" if counted is not None else "gone")


async def confirm(storage: Storage, digest: str, now: int) -> Change | None:
    """Confirm the submission a confirmation link names; None when the link is unknown or
    expired (nothing changes then)."""
    async with storage.write() as tx:
        link = await _link(tx, digest, links.CONFIRM)
        if link is None or (link[2] is not None and link[2] < now):
            return None
        petition_id, ref = link[0], link[1]
        pending = await tx.fetch_one(
            "SELECT id, email_key, partner_id, status FROM pending_signatures WHERE ref = :ref",
            {"ref": ref},
        )
        if pending is None:  # confirmed before, withdrawn, or expired: nothing to do
            return Change(petition_id)
        pending_id, email_key, partner_id = pending[0], pending[1], pending[2]
        counts = pending[3] == abuse.COUNTED
        moved = await tx.fetch_val(
            "INSERT INTO signatures (petition_id, partner_id, unknown_partner, email_key, "
            "email, name, country, comment, lang, consent_version, consent_organiser, "
            "consent_partner, created_at, signed_at, ref, sealed, partner_sealed, "
            "email_domain, webhook_sealed, consent_name_to_target, status) "
            "SELECT petition_id, partner_id, unknown_partner, email_key, email, name, country, "
            "comment, lang, consent_version, consent_organiser, consent_partner, "
            # Sealed, the clear time of the confirmation is its hour, like every other.
            "CASE WHEN sealed IS NULL THEN CAST(:now AS BIGINT) ELSE CAST(:hour AS BIGINT) END, "
            "created_at, ref, sealed, "
            "partner_sealed, email_domain, webhook_sealed, consent_name_to_target, status "
            "FROM pending_signatures WHERE id = :id "
            "ON CONFLICT (petition_id, email_key) DO NOTHING RETURNING id",
            {"id": pending_id, "now": now, "hour": sealing.hour(now)},
        )
        key = {"p": petition_id, "k": email_key}
        winner = await tx.fetch_val(
            "SELECT ref FROM signatures WHERE petition_id = :p AND email_key = :k", key
        )
        # Every other pending submission of this address goes (the squatter's with it), and
        # its links lead to the signature that counts.
        await tx.execute(
            "UPDATE links SET ref = :winner WHERE ref IN (SELECT ref FROM pending_signatures "
            "WHERE petition_id = :p AND email_key = :k)",
            {**key, "winner": winner},
        )
        await tx.execute(
            "DELETE FROM pending_signatures WHERE petition_id = :p AND email_key = :k", key
        )
        # The address had signed already; or this one is quarantined (or invalidated while it
        # waited): its confirmation is recorded, and it counts once an owner restores it.
        if moved is None or not counts:
            return Change(petition_id)
        count = await _move_counter(tx, petition_id, partner_id, +1)
        # Its webhook events, in this transaction: it counts if and only if they go out.
        await events.signature_counted(tx, int(moved), now)
        await events.check_milestones(tx, petition_id, count, now)
    return Change(petition_id, count)


async def withdraw(storage: Storage, digest: str) -> Change | None:
    """Remove the signature or pending submission a withdrawal link names; None when the link
    is unknown. A link whose submission is gone changes nothing."""
    async with storage.write() as tx:
        link = await _link(tx, digest, links.WITHDRAW)
        if link is None:
            return None
        petition_id, ref = link[0], link[1]
        counting = await tx.fetch_val(
            "SELECT id FROM signatures WHERE ref = :ref AND status = :counted",
            {"ref": ref, "counted": abuse.COUNTED},
        )
        if counting is not None:  # read before it goes; one that never counted is no event
            await events.signatures_withdrawn(tx, [int(counting)], "withdrawn", time.time())
        removed = await tx.fetch_one(
            "DELETE FROM signatures WHERE ref = :ref RETURNING petition_id, partner_id, status",
            {"ref": ref},
        )
        await tx.execute("DELETE FROM pending_signatures WHERE ref = :ref", {"ref": ref})
        if removed is None or removed[2] != abuse.COUNTED:  # nothing left, or it never counted
            return Change(petition_id)
        count = await _move_counter(tx, petition_id, removed[1], -1)
        await _counts_went_down(tx)
    return Change(petition_id, count)


async def expire_pending(storage: Storage, now: int, lifetime: int) -> int:
    """Delete submissions not confirmed within `lifetime` seconds, with all their personal
    data, and links expired long enough ago; returns how many submissions went."""
    async with storage.write() as tx:
        gone = await tx.fetch_all(
            "DELETE FROM pending_signatures WHERE created_at < :before RETURNING id",
            {"before": now - lifetime},
        )
        await tx.execute(
            "DELETE FROM links WHERE expires_at IS NOT NULL AND expires_at < :before",
            {"before": now - KEEP_EXPIRED_LINKS},
        )
    return len(gone)


async def forget_unmailable(storage: Storage, ref: str) -> bool:
    """Delete the pending submission `ref` with its personal data and its links, because its
    confirmation mail was refused for good: nobody can ever confirm it. A submission confirmed
    meanwhile is a signature under the same `ref` and is left alone, links and all; so are the
    links of one already gone (withdrawn, expired), as a withdrawal leaves them. Returns
    whether a submission went."""
    async with storage.write() as tx:
        gone = await tx.fetch_all(
            "DELETE FROM pending_signatures WHERE ref = :ref RETURNING id", {"ref": ref}
        )
        if gone:
            await tx.execute("DELETE FROM links WHERE ref = :ref", {"ref": ref})
    return bool(gone)


async def pending_count(storage: Storage, petition_id: int) -> int:
    """Submissions of a petition that wait for confirmation (the dashboard shows how many)."""
    value = await storage.database.fetch_val(
        "SELECT COUNT(*) FROM pending_signatures WHERE petition_id = :p", {"p": petition_id}
    )
    return int(value)


async def remove_signer(
    storage: Storage, petition_id: int, email_key: str, mail_tag: str | None = None
) -> tuple[int, int]:
    """Remove an address's signature and pending submissions from a petition, for a signer
    who asks by other means: (signatures removed, pending submissions removed). `mail_tag`
    (`EmailHasher.mail_tag` of `email_key`) finds its unsent mails that keep no clear `ref`."""
    async with storage.write() as tx:
        key = {"p": petition_id, "k": email_key}
        # Read before they go; one that never counted (quarantined, invalidated) is no event.
        ids = await tx.fetch_all(
            "SELECT id FROM signatures WHERE petition_id = :p AND email_key = :k "
            "AND status = :counted",
            {**key, "counted": abuse.COUNTED},
        )
        await events.signatures_withdrawn(tx, [int(r[0]) for r in ids], "withdrawn", time.time())
        removed = await tx.fetch_all(
            "DELETE FROM signatures WHERE petition_id = :p AND email_key = :k "
            "RETURNING partner_id, ref, status",
            key,
        )
        pending = await tx.fetch_all(
            "DELETE FROM pending_signatures WHERE petition_id = :p AND email_key = :k "
            "RETURNING id, ref",
            key,
        )
        # Its mails not sent yet go too: they hold the address (encrypted), and would still
        # reach it with links to a signature that is gone.
        refs = {r[1] for r in [*removed, *pending] if r[1]}
        await _forget_mails(tx, petition_id, refs, mail_tag)
        # The digests of its key go too (with the hash key, a list of addresses can be tested
        # against them): its mail quota on this petition, its daily mail budgets, and the one
        # on its used form tokens, whose nonces stay until they expire, to stop a replay.
        digest = {"p": petition_id, "d": email_digest(email_key)}
        await tx.execute("DELETE FROM mail_quota WHERE petition_id = :p AND email_key = :d", digest)
        await tx.execute("DELETE FROM mail_budget WHERE recipient = :d", digest)
        await tx.execute(
            "UPDATE used_tokens SET email_digest = NULL WHERE email_digest = :d", digest
        )
        counted = [row for row in removed if row[2] == abuse.COUNTED]
        for row in counted:
            await _move_counter(tx, petition_id, row[0], -1)
        if counted:
            await _counts_went_down(tx)
    return len(removed), len(pending)


async def _forget_mails(
    tx: Transaction, petition_id: int, refs: set[str], mail_tag: str | None
) -> None:
    """Delete the queued mails about the submissions `refs` (rows written without the hash
    key name them in clear) or, about this petition, to the signer `mail_tag` (rows whose
    `ref` is in their box). The queue of unsent mails is short, so it is read whole rather
    than indexed."""
    if not refs and mail_tag is None:
        return
    rows = await tx.fetch_all("SELECT id, payload FROM outbox WHERE topic = :t", {"t": MAIL_TOPIC})
    for row in rows:
        payload = json.loads(row[1])
        tagged = mail_tag is not None and payload.get("signer") == mail_tag
        if payload.get("ref") in refs or (tagged and payload.get("petition_id") == petition_id):
            await tx.execute("DELETE FROM outbox WHERE id = :id", {"id": row[0]})


async def _link(tx: Transaction, digest: str, kind: str) -> tuple[int, str, int | None] | None:
    row = await tx.fetch_one(
        "SELECT petition_id, ref, expires_at FROM links WHERE digest = :d AND kind = :kind",
        {"d": digest, "kind": kind},
    )
    return None if row is None else (row[0], row[1], row[2])


async def _move_counter(tx: Transaction, petition_id: int, partner_id: int | None, n: int) -> int:
    """Add `n` to a counter row of the petition and partner; the petition's count after it."""
    await tx.execute(
        "INSERT INTO counters (petition_id, partner_id, shard, n) VALUES (:p, :partner, :s, :n) "
        "ON CONFLICT (petition_id, partner_id, shard) DO UPDATE SET n = counters.n + excluded.n",
        {"p": petition_id, "partner": partner_id or 0, "s": random.randrange(16), "n": n},
    )
    total = await tx.fetch_val(
        "SELECT COALESCE(SUM(n), 0) FROM counters WHERE petition_id = :p", {"p": petition_id}
    )
    return int(total)


async def _counts_went_down(tx: Transaction) -> None:
    """Tell every worker's registry that a count went down: registries never lower a count on
    their own (a total read before a commit they noted is older than what they hold), so a
    withdrawal bumps the content revision, after which they take the totals as they are."""
    await tx.execute("UPDATE revisions SET n = n + 1 WHERE name = 'content'")
