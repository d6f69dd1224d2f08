"""Recording signatures: the statements of one group commit, written once for both engines.

A group is written as a *plan*, a generator that yields statements and receives their first
row, which each engine adapter runs on its raw driver (`Engine.run_plan`): the hot path pays
for no layer in between. See `writer` for why signatures are committed in groups.

Counts are kept in `counters`, one row per petition, partner and shard, updated in the same
transaction as the signatures they count and summed on read: the count is exact without a
`COUNT(*)`, and writers on several processes or hosts spread over shards instead of queueing
on one row.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
from collections.abc import Generator, Sequence
from typing import Any

from server.domain import links, sealing
from server.domain.links import Link
from server.domain.sealing import EmailHasher
from server.domain.signatures import Decoy, NewSignature
from server.store import events
from server.store.engine import Many, Plan, Statement

_CLAIM_NONCE = """
INSERT INTO used_tokens (nonce, email_digest, expires_at, ref)
VALUES (:nonce, :digest, :expires_at, :ref)
ON CONFLICT (nonce) DO NOTHING RETURNING nonce"""
_NONCE_OWNER = """
SELECT u.email_digest, s.email_key, u.ref FROM used_tokens u
LEFT JOIN signatures s ON s.id = u.signature_id WHERE u.nonce = :nonce"""
_INSERT_SIGNATURE = """
INSERT INTO signatures (petition_id, partner_id, unknown_partner, email_key, email, name,
    country, comment, lang, consent_version, consent_organiser, consent_partner, created_at, ref,
    sealed, partner_sealed, email_domain, webhook_sealed,
    consent_name_to_target, status)
VALUES (:petition_id, :partner_id, :unknown_partner, :email_key, :email, :name,
    :country, :comment, :lang, :consent_version, :consent_organiser, :consent_partner, :now, :ref,
    :sealed, :partner_sealed, :email_domain, :webhook_sealed,
    :consent_name_to_target, :status)
ON CONFLICT (petition_id, email_key) DO NOTHING RETURNING id"""
_INSERT_PENDING = """
INSERT INTO pending_signatures (petition_id, partner_id, unknown_partner, email_key, email, name,
    country, comment, lang, consent_version, consent_organiser, consent_partner, created_at, ref,
    sealed, partner_sealed, email_domain, name_box, webhook_sealed,
    consent_name_to_target, status)
VALUES (:petition_id, :partner_id, :unknown_partner, :email_key, :email, :name,
    :country, :comment, :lang, :consent_version, :consent_organiser, :consent_partner, :now, :ref,
    :sealed, :partner_sealed, :email_domain, :name_box, :webhook_sealed,
    :consent_name_to_target, :status)
"""
_SIGNED_BEFORE = """
SELECT id, ref FROM signatures WHERE petition_id = :petition_id AND email_key = :email_key"""
_NAME_SIGNATURE = "UPDATE signatures SET ref = :ref WHERE id = :id AND ref IS NULL"
_ADD_LINK = """
INSERT INTO links (digest, kind, petition_id, ref, expires_at)
VALUES (:digest, :kind, :petition_id, :ref, :expires_at)"""
_COUNT_QUOTA = """
INSERT INTO mail_quota (petition_id, email_key, sent) VALUES (:petition_id, :email_key, 1)
ON CONFLICT (petition_id, email_key) DO UPDATE SET sent = mail_quota.sent + 1 RETURNING sent"""
_COUNT_BUDGET = """
INSERT INTO mail_budget (recipient, day, sent) VALUES (:recipient, :day, 1)
ON CONFLICT (recipient, day) DO UPDATE SET sent = mail_budget.sent + 1 RETURNING sent"""
_QUEUE_MAIL = """
INSERT INTO outbox (topic, payload, created_at, available_at)
VALUES ('mail', :payload, :now, :now)"""
_ADD_CONSENT = """
INSERT INTO consent_texts (version, lang, text) VALUES (:version, :lang, :text)
ON CONFLICT (version) DO NOTHING"""
_BUMP_COUNTER = """
INSERT INTO counters (petition_id, partner_id, shard, n)
VALUES (:petition_id, :partner_id, :shard, :n)
ON CONFLICT (petition_id, partner_id, shard) DO UPDATE SET n = counters.n + excluded.n"""
# A petition's count after the group, and whether it has an enabled webhook endpoint now, in
# this transaction (not in the registry, a second behind): its events are then written too.
_PETITION_TOTAL = """
SELECT COALESCE(SUM(n), 0), EXISTS (SELECT 1 FROM webhook_endpoints
    WHERE petition_id = :petition_id AND disabled_at IS NULL)
FROM counters WHERE petition_id = :petition_id"""

MAIL_TOPIC = "mail"
MAILS_PER_SIGNER = 3  # mails ever sent to one address about one petition
MAILS_PER_DAY = 5  # mails a day to one address, over every petition
DAY = 86_400
#: The value a signature that waits for confirmation gets: there is no count to tell.
QUEUED = 0


def sign_plan(
    batch: Sequence[NewSignature | Decoy],
    *,
    shard: int,
    now: int,
    known_consents: set[str],
    sealed_events: EmailHasher | None = None,
) -> Plan:
    """Record a group of signatures in one transaction; the plan's value has, per signature,
    the petition's count after the group (`QUEUED` for one that waits for confirmation), or
    None when its token was already used by someone else.

    A token's nonce is claimed first, with a digest of the signer's email key, so a replayed
    token records nothing, and a retry of the very same submission finds its own nonce and
    digest and gets the same answer (and sends no second mail). A signature that counts at once
    is stopped by the unique constraint when its signer had signed: not counted twice, and its
    withdrawal link, recorded only with a new signature, then removes nothing. One that needs
    confirming waits in `pending_signatures` with its links, and its mail goes to the outbox in
    this same transaction: the confirmation, or "you have already signed" for a signer who has.
    A quarantined signature (`NewSignature.status`) takes every one of these steps alike, and
    only moves no counter (nor will its confirmation). `sealed_events`: see
    `events.plan_counted`.
    """
    increments: collections.Counter[tuple[int, int]] = collections.Counter()
    accepted = [False] * len(batch)
    # Rows whose statements return nothing the plan needs wait for the group's end, and go in
    # one statement per table (`Many`): on PostgreSQL each statement is a round trip.
    rows = _Rows()
    counted: list[NewSignature] = []  # counted now: announced if its petition has endpoints
    signatures = [s for s in batch if isinstance(s, NewSignature)]
    for consent in {s.consent for s in signatures if s.consent.version not in known_consents}:
        yield _ADD_CONSENT, {"version": consent.version, "lang": consent.lang, "text": consent.text}
    for i, s in enumerate(batch):
        if isinstance(s, Decoy):
            rows.links.append(_link(s.withdraw, links.WITHDRAW, s.petition_id, s.ref, None))
            accepted[i] = True
            continue
        digest = email_digest(s.signer.email_key)
        claim = {
            "nonce": s.nonce,
            "digest": digest,
            # Sealed, no exact time is kept beside a signature: the token's would tell it.
            "expires_at": sealing.hour_after(s.nonce_expires_at)
            if s.sealed
            else s.nonce_expires_at,
            "ref": s.ref or None,
        }
        if (yield _CLAIM_NONCE, claim) is None:
            owner = yield _NONCE_OWNER, {"nonce": s.nonce}
            accepted[i] = owner is not None and digest in (owner[0], email_digest(owner[1]))
            if accepted[i] and owner[2] and s.withdraw and not s.needs_confirmation:
                # A retry whose first answer was lost: its link withdraws the same signature.
                rows.links.append(_link(s.withdraw, links.WITHDRAW, s.petition_id, owner[2], None))
            continue
        accepted[i] = True
        if s.needs_confirmation:
            yield from _wait_for_confirmation(s, now, rows)
            continue
        # A quarantined signature is stored like any other, and moves no counter.
        if (yield _INSERT_SIGNATURE, _signature_values(s, now)) is not None and s.counts:
            increments[(s.petition_id, s.partner_id or 0)] += 1
            counted.append(s)
        if s.withdraw is not None:
            # Also for a signer who had signed (the insert changed nothing): the link then
            # names no signature, and its pages look like any other's.
            rows.links.append(_link(s.withdraw, links.WITHDRAW, s.petition_id, s.ref, None))
    yield from rows.write()
    # Sorted, so that concurrent transactions lock counter rows in the same order.
    for (petition_id, partner_id), n in sorted(increments.items()):
        values = {"petition_id": petition_id, "partner_id": partner_id, "shard": shard, "n": n}
        yield _BUMP_COUNTER, values
    totals, hooked = {}, set()
    for petition_id in sorted({s.petition_id for s in signatures if not s.needs_confirmation}):
        row = yield _PETITION_TOTAL, {"petition_id": petition_id}
        totals[petition_id] = int(row[0])
        if row[1]:
            hooked.add(petition_id)
    announced = [s for s in counted if s.petition_id in hooked]
    if announced:
        # Their events, in this same transaction: a counted signature reaches every CRM.
        yield from events.plan_counted(
            [(s, totals[s.petition_id]) for s in announced], now, sealed_events
        )
    return [
        None if not ok
        else QUEUED if isinstance(s, Decoy) or s.needs_confirmation
        else totals[s.petition_id]
        for s, ok in zip(batch, accepted, strict=True)
    ]  # fmt: skip


@dataclasses.dataclass
class _Rows:
    """The rows a group adds that no later statement of the plan reads back."""

    pending: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    links: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    mails: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def write(self) -> Generator[Many, Any, None]:
        for sql, values in ((_INSERT_PENDING, self.pending), (_ADD_LINK, self.links),
                            (_QUEUE_MAIL, self.mails)):  # fmt: skip
            if values:
                yield Many(sql, values)


def _wait_for_confirmation(
    s: NewSignature, now: int, rows: _Rows
) -> Generator[Statement, Any, None]:
    assert s.confirm is not None and s.withdraw is not None
    key = {"petition_id": s.petition_id, "email_key": s.signer.email_key}
    before = yield _SIGNED_BEFORE, key
    if before is None:
        rows.pending.append(
            {**_signature_values(s, now), "name_box": s.sealed.name_box if s.sealed else None}
        )
        expires = (sealing.hour(now) if s.sealed else now) + s.confirm_lifetime
        rows.links.append(_link(s.confirm, links.CONFIRM, s.petition_id, s.ref, expires))
        rows.links.append(_link(s.withdraw, links.WITHDRAW, s.petition_id, s.ref, None))
        # `ref` names the pending submission, so a mail refused for good can delete it.
        mail = {"kind": "confirm", "ref": s.ref, **_links(s, "confirm", "withdraw")}
    else:
        # Signed and confirmed already: the mail says so, with a link that withdraws the
        # signature that counts (named now if it was made before links existed).
        ref = before[1]
        if ref is None:
            ref = s.ref
            yield _NAME_SIGNATURE, {"id": before[0], "ref": ref}
        rows.links.append(_link(s.withdraw, links.WITHDRAW, s.petition_id, ref, None))
        # `ref` names the signature, so removing it also removes this mail if still unsent.
        mail = {"kind": "already_signed", "ref": ref, **_links(s, "withdraw")}
    # The quotas keep a digest of the address, never the address (issue 14 makes every such
    # digest keyed).
    recipient = email_digest(s.signer.email_key)
    sent = yield _COUNT_QUOTA, {"petition_id": s.petition_id, "email_key": recipient}
    if int(sent[0]) > MAILS_PER_SIGNER:
        return
    budget = yield _COUNT_BUDGET, {"recipient": recipient, "day": now // DAY}
    if int(budget[0]) > MAILS_PER_DAY:
        return
    # The address only as the mail needs it, and with the tokens and `ref` encrypted when the
    # hash key is there: the database's files never hold them in clear (deleted rows linger on
    # PostgreSQL), and no clear `ref` joins the mail to its signature; the signer's keyed tag
    # lets `signatures remove` find it instead.
    if s.mail_box:
        to = {"box": s.mail_box, "signer": s.mail_tag}
        mail = {k: v for k, v in mail.items() if k != "ref"}
    else:
        to = {"to": s.signer.email}
    payload = {**mail, **to, "lang": s.lang, "petition_id": s.petition_id}
    # Sealed, a mail's times are kept to the hour like its signature's (exact ones would date
    # the signature); rounded down, so it is due at once.
    queued = sealing.hour(now) if s.sealed else now
    rows.mails.append({"payload": json.dumps(payload), "now": queued})


def _links(s: NewSignature, *kinds: str) -> dict[str, str]:
    """The link tokens a mail shows, in clear only when nothing encrypts them (`mail_box`
    holds them, with the address, otherwise)."""
    if s.mail_box:
        return {}
    found = {"confirm": s.confirm, "withdraw": s.withdraw}
    return {kind: link.token for kind in kinds if (link := found[kind]) is not None}


def _link(
    link: Link, kind: str, petition_id: int, ref: str, expires_at: int | None
) -> dict[str, Any]:
    return {
        "digest": link.digest,
        "kind": kind,
        "petition_id": petition_id,
        "ref": ref,
        "expires_at": expires_at,
    }


def email_digest(email_key: str | None) -> str | None:
    """What a used token keeps of its signer: enough to recognise a retry, not the address."""
    if email_key is None:
        return None
    return hashlib.sha256(email_key.encode()).hexdigest()[:32]


def _signature_values(s: NewSignature, now: int) -> dict[str, Any]:
    signer, sealed = s.signer, s.sealed
    return {
        "petition_id": s.petition_id,
        "partner_id": s.partner_id,
        "unknown_partner": s.unknown_partner,
        "email_key": signer.email_key,
        # Sealed: the personal data is only in the boxes, and the clear time only the hour.
        "email": "" if sealed else signer.email,
        "name": "" if sealed else signer.name,
        "country": signer.country,
        "comment": None if sealed else signer.comment,
        "lang": s.lang,
        "consent_version": s.consent.version,
        "consent_organiser": int(signer.consent_organiser),
        "consent_partner": int(signer.consent_partner),
        "consent_name_to_target": int(signer.consent_name_to_target),
        "now": sealing.hour(now) if sealed else now,
        "ref": s.ref or None,
        "sealed": sealed.owner if sealed else None,
        "partner_sealed": sealed.partner if sealed else None,
        "email_domain": s.email_domain,
        "webhook_sealed": events.webhook_sealed(s),
        "status": s.status,
    }
