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
import hashlib
from collections.abc import Sequence
from typing import Any

from server.domain.signatures import NewSignature
from server.store.engine import Plan

_CLAIM_NONCE = """
INSERT INTO used_tokens (nonce, email_digest, expires_at) VALUES (:nonce, :digest, :expires_at)
ON CONFLICT (nonce) DO NOTHING RETURNING nonce"""
_NONCE_OWNER = """
SELECT u.email_digest, s.email_key FROM used_tokens u
LEFT JOIN signatures s ON s.id = u.signature_id WHERE u.nonce = :nonce"""
_INSERT_SIGNATURE = """
INSERT INTO signatures (petition_id, partner_id, unknown_partner, email_key, email, name,
    country, comment, lang, consent_version, consent_organiser, consent_partner, created_at)
VALUES (:petition_id, :partner_id, :unknown_partner, :email_key, :email, :name,
    :country, :comment, :lang, :consent_version, :consent_organiser, :consent_partner, :now)
ON CONFLICT (petition_id, email_key) DO NOTHING RETURNING id"""
_ADD_CONSENT = """
INSERT INTO consent_texts (version, lang, text) VALUES (:version, :lang, :text)
ON CONFLICT (version) DO NOTHING"""
_BUMP_COUNTER = """
INSERT INTO counters (petition_id, partner_id, shard, n)
VALUES (:petition_id, :partner_id, :shard, :n)
ON CONFLICT (petition_id, partner_id, shard) DO UPDATE SET n = counters.n + excluded.n"""
_PETITION_TOTAL = "SELECT COALESCE(SUM(n), 0) FROM counters WHERE petition_id = :petition_id"


def sign_plan(
    batch: Sequence[NewSignature], *, shard: int, now: int, known_consents: set[str]
) -> Plan:
    """Record a group of signatures in one transaction; the plan's value has, per signature,
    the petition's count after the group, or None when its token was already used by someone
    else.

    A token's nonce is claimed first, with a digest of the signer's email key, so a replayed
    token records nothing; the same person (same email key) signing again is stopped by the
    unique constraint and not counted twice; a retry of the very same submission finds its own
    nonce and digest and gets the same answer.
    """
    increments: collections.Counter[tuple[int, int]] = collections.Counter()
    accepted = [False] * len(batch)
    for consent in {s.consent for s in batch if s.consent.version not in known_consents}:
        yield _ADD_CONSENT, {"version": consent.version, "lang": consent.lang, "text": consent.text}
    for i, s in enumerate(batch):
        digest = email_digest(s.signer.email_key)
        claim = {"nonce": s.nonce, "digest": digest, "expires_at": s.nonce_expires_at}
        if (yield _CLAIM_NONCE, claim) is None:
            owner = yield _NONCE_OWNER, {"nonce": s.nonce}
            accepted[i] = owner is not None and digest in (owner[0], email_digest(owner[1]))
            continue
        if (yield _INSERT_SIGNATURE, _signature_values(s, now)) is not None:
            increments[(s.petition_id, s.partner_id or 0)] += 1
        accepted[i] = True
    # Sorted, so that concurrent transactions lock counter rows in the same order.
    for (petition_id, partner_id), n in sorted(increments.items()):
        values = {"petition_id": petition_id, "partner_id": partner_id, "shard": shard, "n": n}
        yield _BUMP_COUNTER, values
    totals = {}
    for petition_id in sorted({s.petition_id for s in batch}):
        row = yield _PETITION_TOTAL, {"petition_id": petition_id}
        totals[petition_id] = int(row[0])
    return [totals[s.petition_id] if ok else None for s, ok in zip(batch, accepted, strict=True)]


def email_digest(email_key: str | None) -> str | None:
    """What a used token keeps of its signer: enough to recognise a retry, not the address."""
    if email_key is None:
        return None
    return hashlib.sha256(email_key.encode()).hexdigest()[:32]


def _signature_values(s: NewSignature, now: int) -> dict[str, Any]:
    signer = s.signer
    return {
        "petition_id": s.petition_id,
        "partner_id": s.partner_id,
        "unknown_partner": s.unknown_partner,
        "email_key": signer.email_key,
        "email": signer.email,
        "name": signer.name,
        "country": signer.country,
        "comment": signer.comment,
        "lang": s.lang,
        "consent_version": s.consent.version,
        "consent_organiser": int(signer.consent_organiser),
        "consent_partner": int(signer.consent_partner),
        "now": now,
    }
