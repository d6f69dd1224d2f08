"""Signing a petition, decided: a form token's claims, the submitted fields and the petition in;
a new signature, or a refusal with its code, out. Pure: nothing here reads or writes storage.

The order of the checks matters. The petition must be open; the token is checked before the
fields (a bot learns nothing from field errors on a forged or expired token), except that a
genuine token that is only too fresh hears of its fields first (an empty form sent at once is
told "required", not "too fast": it would be refused again once filled); while a challenge is
on (`challenge`), its solution comes next, or for the no-JavaScript form a longer minimum age
of its token (`challenge.FORM_WAIT`, a "too fresh" like any other); a bot that fills the
honeypot is told "signed" without a record; a box that was not shown cannot have been
ticked; and only then, for a submission that would otherwise be recorded, is its network asked
about the aggregate limit (`abuse.OverNetworkLimit`): over it, the signature is recorded
quarantined, and answered like any other. Whether the address has signed before is not
decided here: the store finds out inside the transaction, and the answer is the same either
way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from server.domain import abuse
from server.domain import challenge as work
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
    # The submission's network was over the aggregate limit (`abuse.OverNetworkLimit`): its
    # signature is quarantined. The one flag both answers to that limit read, this one and the
    # proof-of-work challenge.
    over_network_limit: bool = False


def decide(
    entry: Entry,
    tokens: FormTokens,
    fields: Mapping[str, Any],
    confirm_lifetime: int = 604_800,
    hasher: EmailHasher | None = None,
    challenge: work.Challenges | None = None,
    no_script: bool = False,
    over_network_limit: abuse.OverNetworkLimit | None = None,
) -> Decision:
    """Accept a submission, or raise the `Refusal` that answers it: `PetitionClosed`, a
    `TokenError` (with the claims of a genuine token), or `FieldErrors`.

    An accepted submission gets its own random reference and links: a withdrawal link, and a
    confirmation link valid `confirm_lifetime` seconds when the petition confirms by email.
    With `hasher` (`EMAIL_HASH_KEY`, always given in production), the address's key, by which
    the store finds a second signature, is its keyed hash, never the address.

    With `challenge` (one is on), the submission must carry its token's solution
    (`ChallengeRequired`); the no-JavaScript form (`no_script`), which cannot solve it, must
    instead come `challenge.FORM_WAIT` seconds after its first form (`TokenTooFresh` before).

    `over_network_limit` is asked last, once the submission is otherwise accepted (a refused
    or a honeypot one spends no network's budget); when it says yes, the signature is stored
    `QUARANTINED`."""
    if not entry.is_open:
        raise PetitionClosed()
    petition = entry.petition
    # The no-JavaScript form cannot solve a challenge: it waits it out instead, counted like
    # `TOKEN_MIN_AGE` from when its visitor first got a form.
    waits = challenge is not None and no_script
    try:
        claims = tokens.verify(
            fields.get("token"), entry.slug, min_age=work.FORM_WAIT if waits else 0
        )
    except TokenTooFresh as fresh:
        if not fields.get(HONEYPOT) and fresh.claims is not None:
            _check_fields(petition, fields, fresh.claims)
        raise
    if challenge is not None and not no_script:
        _check_work(challenge, claims, fields)
    if fields.get(HONEYPOT):
        return Decision(claims, None)
    signer = _check_fields(petition, fields, claims)
    lang = form_language(entry, claims.lang)
    partner = entry.partners.get(claims.partner)
    wording = consent_wording(entry, lang, partner)
    # A box that was not shown cannot have been ticked.
    unshown_organiser = signer.consent_organiser and wording.organiser_option is None
    unshown_target = signer.consent_name_to_target and wording.target_option is None
    if unshown_organiser or unshown_target or (signer.consent_partner and partner is None):
        signer = dataclasses.replace(
            signer,
            consent_organiser=signer.consent_organiser and not unshown_organiser,
            consent_partner=signer.consent_partner and partner is not None,
            consent_name_to_target=signer.consent_name_to_target and not unshown_target,
        )
    over = over_network_limit is not None and over_network_limit()
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
        petition_slug=entry.slug,
        auto_goal=petition.auto_goal,
        partner_code=partner.code if partner else None,
        status=abuse.QUARANTINED if over else abuse.COUNTED,
    )
    return Decision(claims, signature, over_network_limit=over)


def _check_fields(petition: Petition, fields: Mapping[str, Any], claims: Claims) -> Signer:
    try:
        return validate_signer(fields, country=petition.country, comment=petition.comment)
    except FieldErrors as refusal:
        refusal.claims = claims  # the form comes back with the token's partner and language
        raise


def _check_work(challenge: work.Challenges, claims: Claims, fields: Mapping[str, Any]) -> None:
    if not challenge.solved(claims, work.answer(fields)):
        required = work.ChallengeRequired()
        required.claims = claims
        raise required
