"""A signature on its way to storage, the consent wording a form shows, and the record of the
wording each signer was given. Pure values."""

from __future__ import annotations

import dataclasses
import functools
import hashlib

from server.domain import i18n
from server.domain.links import Link
from server.domain.partners import Partner
from server.domain.petitions import Entry
from server.domain.validation import Signer


@dataclasses.dataclass(frozen=True)
class Consent:
    """The words a signer saw next to the sign button, kept so that an export can prove what
    each signer agreed to. `version` is a digest of the text: equal texts share one record."""

    lang: str
    text: str

    @functools.cached_property
    def version(self) -> str:
        return hashlib.sha256(f"{self.lang}\n{self.text}".encode()).hexdigest()[:20]


@dataclasses.dataclass(frozen=True)
class NewSignature:
    petition_id: int
    partner_id: int | None  # the partner named in the form token, when it is a known partner
    unknown_partner: str | None  # a partner code from the token that no partner has
    nonce: str  # the form token's nonce: one signature per token
    nonce_expires_at: int  # when the token expires and its nonce may be forgotten
    signer: Signer
    lang: str
    consent: Consent
    ref: str = ""  # names this submission in its links (`links.new_ref`)
    # The link that withdraws this submission's signature: in the answer when it counts at
    # once, in the mails when it waits for confirmation.
    withdraw: Link | None = None
    # For a petition whose signatures are confirmed by email: the confirmation link, and for
    # how long it is valid. None: the signature counts at once.
    confirm: Link | None = None
    confirm_lifetime: int = 0

    @property
    def needs_confirmation(self) -> bool:
        return self.confirm is not None


@dataclasses.dataclass(frozen=True)
class Decoy:
    """What a bot caught by the honeypot leaves on a petition that counts at once: a withdrawal
    link, stored like a real one but naming no signature, so that its pages look like any
    other's and tell the bot nothing."""

    petition_id: int
    ref: str
    withdraw: Link


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
