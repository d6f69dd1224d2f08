"""Signing a petition: the steps between a submitted form and a stored signature.

Endpoints call `sign` for both the JSON API and the plain HTML form, and only shape its
`Outcome` into a response. The order of the checks matters: the token is checked before the
fields (a bot learns nothing from field errors on a forged token), and a duplicate signer gets
exactly the answer a new signer gets, so no response tells whether an address has signed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from server.domain import i18n
from server.domain.errors import StorageUnavailable
from server.domain.form_tokens import TokenError
from server.domain.partners import Partner
from server.domain.petitions import Entry
from server.domain.signatures import Consent, NewSignature
from server.domain.validation import FieldErrors, validate_signer
from server.wiring import Services

HONEYPOT = "website"  # hidden from people; a bot that fills it is told "signed" and ignored
STORAGE_RETRY_AFTER = 5  # seconds a client should wait when storage is unavailable
NONCE_GRACE = 60  # seconds a used nonce is kept beyond its token's expiry (clock skew)


@dataclasses.dataclass(frozen=True)
class Outcome:
    status: int
    count: int | None = None  # the petition's count, on success
    error: str | None = None  # the API error code otherwise
    fields: dict[str, tuple[str, dict[str, Any]]] | None = None  # per-field message keys
    retry_after: int | None = None

    @property
    def signed(self) -> bool:
        return self.status == 201


@dataclasses.dataclass(frozen=True)
class ConsentWording:
    """What the form says about the use of a signer's data, in one language."""

    lang: str
    notice: str
    organiser_option: str | None  # the "keep me informed" box of the organiser, if any
    partner_option: str | None  # the box of the partner whose page shows the form, if any

    def record(self) -> Consent:
        parts = [self.notice, self.organiser_option, self.partner_option]
        return Consent(self.lang, "\n".join(p for p in parts if p))


_WORDINGS: dict[tuple[int, str, int | None], tuple[Entry, ConsentWording]] = {}


def consent_wording(entry: Entry, lang: str, partner: Partner | None) -> ConsentWording:
    """The wording for a petition as loaded (a reloaded petition is a new entry), a language and
    a partner: built once, as every signature of a surge asks for the same few."""
    key = (entry.id, lang, partner.id if partner else None)
    found = _WORDINGS.get(key)
    if found is None or found[0] is not entry:
        if len(_WORDINGS) > 10_000:
            _WORDINGS.clear()
        found = _WORDINGS[key] = (entry, _consent_wording(entry, lang, partner))
    return found[1]


def _consent_wording(entry: Entry, lang: str, partner: Partner | None) -> ConsentWording:
    t = i18n.catalog(lang)
    organiser = entry.petition.in_language(lang).organiser
    return ConsentWording(
        lang=lang,
        notice=(
            t("consent_notice", organiser=organiser) if organiser
            else t("consent_notice_no_organiser")
        ),
        organiser_option=t("consent_organiser", organiser=organiser) if organiser else None,
        partner_option=t("consent_partner", partner=partner.name) if partner else None,
    )  # fmt: skip


def form_language(entry: Entry, lang: str) -> str:
    """The language a token's form was shown in, or the petition's own."""
    return lang if lang in entry.petition.languages else entry.petition.lang


async def sign(services: Services, entry: Entry, fields: Mapping[str, Any]) -> Outcome:
    if not entry.is_open:
        return Outcome(403, error="petition_closed")
    try:
        claims = services.tokens.verify(fields.get("token"), entry.slug)
    except TokenError as exc:
        return Outcome(400, error=exc.code, retry_after=exc.retry_after)
    if fields.get(HONEYPOT):
        return Outcome(201, count=services.registry.count(entry))
    petition = entry.petition
    try:
        signer = validate_signer(fields, country=petition.country, comment=petition.comment)
    except FieldErrors as exc:
        return Outcome(422, error="invalid_fields", fields=exc.errors)

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
    signature = NewSignature(
        petition_id=entry.id,
        partner_id=partner.id if partner else None,
        unknown_partner=claims.partner if claims.partner and partner is None else None,
        nonce=claims.nonce,
        nonce_expires_at=claims.issued_at + services.tokens.lifetime + NONCE_GRACE,
        signer=signer,
        lang=lang,
        consent=wording.record(),
    )
    try:
        count = await services.writer.submit(signature)
    except StorageUnavailable:
        return Outcome(503, error="storage_unavailable", retry_after=STORAGE_RETRY_AFTER)
    if count is None:
        return Outcome(409, error="token_used")
    services.registry.note_count(entry.id, count)
    return Outcome(201, count=count)
