"""Signing a petition, decided: a form token's claims, the submitted fields and the petition in;
a new signature, or a refusal with its code, out. Pure: nothing here reads or writes storage.

The order of the checks matters. The petition must be open; the token is checked before the
fields (a bot learns nothing from field errors on a forged or expired token), except that a
genuine token that is only too fresh hears of its fields first (an empty form sent at once is
told "required", not "too fast": it would be refused again once filled); a bot that fills the
honeypot is told "signed" without a record; and a box that was not shown cannot have been
ticked. Whether the address has signed before is not decided here: the store finds out inside
the transaction, and the answer is the same either way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from server.domain.errors import PetitionClosed
from server.domain.form_tokens import Claims, FormTokens, TokenTooFresh
from server.domain.links import Link, new_ref
from server.domain.petitions import Entry, Petition
from server.domain.sealing import EmailHasher
from server.domain.signatures import NewSignature, consent_wording, form_language
from server.domain.validation import FieldErrors, Signer, validate_signer

HONEYPOT = "website"  # hidden from people; a bot that fills it is told "signed" and ignored
NONCE_GRACE = 60  # seconds a used nonce is kept beyond its token's expiry (clock skew)


@dataclasses.dataclass(frozen=True)
class Decision:
    """An accepted submission: the token's claims, and the signature to record (None when the
    honeypot was filled: the answer says "signed", and nothing is recorded)."""

    claims: Claims
    signature: NewSignature | None


def decide(
    entry: Entry,
    tokens: FormTokens,
    fields: Mapping[str, Any],
    confirm_lifetime: int = 604_800,
    hasher: EmailHasher | None = None,
) -> Decision:
    """Accept a submission, or raise the `Refusal` that answers it: `PetitionClosed`, a
    `TokenError` (with the claims of a genuine token), or `FieldErrors`.

    An accepted submission gets its own random reference and links: a withdrawal link, and a
    confirmation link valid `confirm_lifetime` seconds when the petition confirms by email.
    With `hasher` (`EMAIL_HASH_KEY`, always given in production), the address's key, by which
    the store finds a second signature, is its keyed hash, never the address."""
    if not entry.is_open:
        raise PetitionClosed()
    petition = entry.petition
    try:
        claims = tokens.verify(fields.get("token"), entry.slug)
    except TokenTooFresh as fresh:
        if not fields.get(HONEYPOT) and fresh.claims is not None:
            _check_fields(petition, fields, fresh.claims)
        raise
    if fields.get(HONEYPOT):
        return Decision(claims, None)
    signer = _check_fields(petition, fields, claims)
    lang = form_language(entry, claims.lang)
    partner = entry.partners.get(claims.partner)
    wording = consent_wording(entry, lang, partner)
    # A box that was not shown cannot have been ticked.
    unshown_organiser = signer.consent_organiser and wording.organiser_option is None
    if unshown_organiser or (signer.consent_partner and partner is None):
        signer = dataclasses.replace(
            signer,
            consent_organiser=signer.consent_organiser and not unshown_organiser,
            consent_partner=signer.consent_partner and partner is not None,
        )
    withdraw = Link.new()
    confirm = Link.new() if petition.needs_confirmation else None
    ref = new_ref()
    domain = mail_box = mail_tag = None
    if hasher is not None:
        domain = hasher.domain_key(signer.email_key.rpartition("@")[2])
        signer = dataclasses.replace(signer, email_key=hasher.email_key(signer.email_key))
        if confirm is not None:
            secrets = {"to": signer.email, "confirm": confirm.token, "withdraw": withdraw.token}
            mail_box = hasher.seal_mail({**secrets, "ref": ref})
            mail_tag = hasher.mail_tag(signer.email_key)
    signature = NewSignature(
        petition_id=entry.id,
        partner_id=partner.id if partner else None,
        unknown_partner=claims.partner if claims.partner and partner is None else None,
        nonce=claims.nonce,
        # The token's own expiry, not today's lifetime: the nonce is kept while the token lives.
        nonce_expires_at=claims.expires_at + NONCE_GRACE,
        signer=signer,
        lang=lang,
        consent=wording.record(),
        ref=ref,
        withdraw=withdraw,
        confirm=confirm,
        confirm_lifetime=confirm_lifetime,
        email_domain=domain,
        partner_key=partner.public_key if partner and signer.consent_partner else None,
        mail_box=mail_box,
        mail_tag=mail_tag,
    )
    return Decision(claims, signature)


def _check_fields(petition: Petition, fields: Mapping[str, Any], claims: Claims) -> Signer:
    try:
        return validate_signer(fields, country=petition.country, comment=petition.comment)
    except FieldErrors as refusal:
        refusal.claims = claims  # the form comes back with the token's partner and language
        raise
