"""A signature on its way to storage, the consent wording a form shows, and the record of the
wording each signer was given. Pure values."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Sequence
from typing import Any

from server.domain import abuse, i18n, webhooks
from server.domain.links import Link
from server.domain.partners import Partner
from server.domain.petitions import Entry
from server.domain.sealing import Sealed, name_box, parse_public_key, seal_signer
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
    # The keyed hash of the address's domain (abuse rules filter on it; see `sealing`).
    email_domain: str | None = None
    # The partner's public key, when the signer ticked its box and it has one: a copy of the
    # personal data is sealed for it.
    partner_key: str | None = None
    # The personal data, sealed (`seal_group`); None while it is not, or when nothing seals.
    sealed: Sealed | None = None
    # Its mail's address and link tokens, encrypted for the outbox (`EmailHasher.seal_mail`);
    # None: the outbox keeps them in clear (no hash key: tests that build signatures by hand).
    mail_box: str | None = None
    # With `mail_box`: its signer's `EmailHasher.mail_tag`, what the mail row keeps in clear
    # in place of `ref` (which is in the box) so that `signatures remove` finds it.
    mail_tag: str | None = None
    # For webhook events: the petition's slug, the partner's code, whether its goal moves by
    # steps (`auto_goal`: each step is a milestone), and the petition's enabled endpoints as the
    # registry knows them (`web/submission.sign` sets them).
    petition_slug: str = ""
    partner_code: str | None = None
    auto_goal: bool = False
    webhooks: tuple[webhooks.Target, ...] = ()
    # `abuse.COUNTED`, or `abuse.QUARANTINED` when it tripped an abuse rule: stored, answered
    # and mailed alike, but counted nowhere until an owner restores it.
    status: str = abuse.COUNTED

    @property
    def counts(self) -> bool:
        return self.status == abuse.COUNTED

    @property
    def needs_confirmation(self) -> bool:
        return self.confirm is not None


def seal_group(
    batch: Sequence[NewSignature | Decoy], now: int, *, owner_key: str
) -> list[NewSignature | Decoy]:
    """A group's signatures with their personal data sealed for the owner (and the partner
    copies): run by the writer off the event loop before the group's transaction. `now` is the
    exact time of submission, which only the boxes keep."""
    owner = _public_key(owner_key)
    sealed: list[NewSignature | Decoy] = []
    for s in batch:
        if isinstance(s, NewSignature) and s.sealed is None:
            partner = _public_key(s.partner_key) if s.partner_key is not None else None
            box = seal_signer(
                name=s.signer.name, email=s.signer.email, comment=s.signer.comment,
                signed_at=now, owner=owner, partner=partner,
            )  # fmt: skip
            if s.confirm is not None:
                box = dataclasses.replace(box, name_box=name_box(s.signer.name, s.confirm.token))
            if s.webhooks:
                boxes = webhooks.seal_for(
                    s.webhooks, partner_id=s.partner_id,
                    consent_organiser=s.signer.consent_organiser,
                    consent_partner=s.signer.consent_partner,
                    name=s.signer.name, email=s.signer.email,
                )  # fmt: skip
                box = dataclasses.replace(box, webhooks=tuple(sorted(boxes.items())))
            s = dataclasses.replace(s, sealed=box)
        sealed.append(s)
    return sealed


@functools.lru_cache(maxsize=1024)
def _public_key(text: str) -> Any:
    """A key parsed once, not per group: the owner's and a few partners' keys recur."""
    return parse_public_key(text)


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
    # The box that puts the signer's name on the list delivered to the target, when the
    # petition offers it (`[form] name_to_target = "optional"`).
    target_option: str | None = None
    # Where a native speaker has not yet signed off the translation (`i18n.Catalog.reviewed`):
    # the English original, shown beside it, and its heading in this language.
    original: ConsentWording | None = None
    original_label: str = ""

    def parts(self) -> list[str]:
        options = (self.notice, self.organiser_option, self.partner_option, self.target_option)
        return [p for p in options if p]

    def record(self) -> Consent:
        """The words as recorded with each signature: the translation and, when it was shown,
        the English original under its heading, as the signer saw them."""
        text = "\n".join(self.parts())
        if self.original is not None:
            text += "\n\n" + "\n".join([self.original_label, *self.original.parts()])
        return Consent(self.lang, text)


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
    wording = _wording_in(i18n.catalog(lang), entry, lang, partner)
    if i18n.catalog(lang).unreviewed_consent:
        english = _wording_in(i18n.catalog(i18n.DEFAULT_LANGUAGE), entry, lang, partner)
        label = i18n.catalog(lang)("consent_original")
        wording = dataclasses.replace(wording, original=english, original_label=label)
    return wording


def _wording_in(
    t: i18n.Catalog, entry: Entry, lang: str, partner: Partner | None
) -> ConsentWording:
    # The organiser as the petition names it in the form's language, in both texts.
    texts = entry.petition.in_language(lang)
    organiser = texts.organiser
    offered = entry.petition.name_to_target == "optional"
    return ConsentWording(
        lang=t.lang,
        notice=(
            t("consent_notice", organiser=organiser) if organiser
            else t("consent_notice_no_organiser")
        ),
        organiser_option=t("consent_organiser", organiser=organiser) if organiser else None,
        partner_option=t("consent_partner", partner=partner.name) if partner else None,
        target_option=t("consent_name_to_target", target=texts.target) if offered else None,
    )  # fmt: skip


def form_language(entry: Entry, lang: str) -> str:
    """The language a token's form was shown in, or the petition's own."""
    return lang if lang in entry.petition.languages else entry.petition.lang
