"""The signing decision, without a server or a database: a petition entry, a form-token minter
on a frozen clock, and the submitted fields in; a `Decision` or a `Refusal` out."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.domain import decision, i18n
from server.domain.decision import HONEYPOT, NONCE_GRACE, Decision, decide
from server.domain.errors import PetitionClosed
from server.domain.form_tokens import FormTokens, TokenError
from server.domain.partners import INVALID_CODE, Partner
from server.domain.petitions import Entry, Petition, load_file, parse
from server.domain.signatures import NewSignature
from server.domain.validation import FieldErrors
from server.web import bundle

LIFETIME = 7200
MIN_AGE = 3
ENTRY_ID = 7
PARTNER = Partner(id=11, petition_id=ENTRY_ID, code="partner-a", name="Partner A Org")
EXAMPLE_TEXT = bundle.EXAMPLE_PETITION.read_text(encoding="utf-8")


class Clock:
    """A frozen clock the test moves by hand: age and expiry are tested without sleeping."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def minter(clock: Clock, keys: tuple[str, ...] = ("key-one",)) -> FormTokens:
    return FormTokens(keys, lifetime=LIFETIME, min_age=MIN_AGE, clock=clock)


def entry_of(petition: Petition, **changes: Any) -> Entry:
    entry = Entry(
        id=ENTRY_ID,
        slug=petition.slug,
        petition=petition,
        goal=petition.goal,
        status=petition.status,
        updated_at=1_700_000_000,
        partners={PARTNER.code: PARTNER},
    )
    return dataclasses.replace(entry, **changes)


@functools.cache
def example_petition() -> Petition:
    return load_file(bundle.EXAMPLE_PETITION)


def example_entry(**changes: Any) -> Entry:
    return entry_of(example_petition(), **changes)


def without_organiser() -> Entry:
    """The example petition with no organiser, in any language (parsed from a modified file)."""
    text = EXAMPLE_TEXT.replace('organiser = "All Out"\n', "")
    assert "organiser =" not in text
    petition = parse(text)
    assert all(not t.organiser for t in petition.texts.values())
    return entry_of(petition)


def good_fields(token: str, **more: Any) -> dict[str, Any]:
    return {"token": token, "name": "  Анна  Иванова ", "email": "Anna@Example.ORG", **more}


def aged_token(
    clock: Clock, tokens: FormTokens, slug: str, partner: str = "", lang: str = ""
) -> str:
    """A token issued now, with the clock then moved past the minimum age."""
    token = tokens.issue(slug, partner, lang)
    clock.now += MIN_AGE + 10
    return token


def signed(entry: Entry, partner: str = "", lang: str = "en", **more: Any) -> NewSignature:
    clock = Clock()
    tokens = minter(clock)
    token = aged_token(clock, tokens, entry.slug, partner, lang)
    result = decide(entry, tokens, good_fields(token, **more))
    assert result.signature is not None
    return result.signature


def token_refusal(entry: Entry, tokens: FormTokens, fields: dict[str, Any]) -> TokenError:
    with pytest.raises(TokenError) as caught:
        decide(entry, tokens, fields)
    return caught.value


# --- Accepted ------------------------------------------------------------------------------------


def test_valid_submission_with_known_partner_makes_a_signature() -> None:
    clock = Clock()
    tokens = minter(clock)
    entry = example_entry()
    issued_at = int(clock.now)
    token = aged_token(clock, tokens, entry.slug, PARTNER.code, "ru")
    result = decide(entry, tokens, good_fields(token, consent_partner="on"))
    assert isinstance(result, Decision)
    assert (result.claims.partner, result.claims.lang) == (PARTNER.code, "ru")
    signature = result.signature
    assert signature is not None
    assert signature.petition_id == ENTRY_ID
    assert signature.partner_id == PARTNER.id
    assert signature.unknown_partner is None
    assert signature.lang == "ru"
    assert signature.nonce == result.claims.nonce and len(signature.nonce) >= 16
    assert result.claims.issued_at == issued_at
    assert signature.nonce_expires_at == issued_at + LIFETIME + NONCE_GRACE
    assert signature.signer.name == "Анна Иванова"
    assert signature.signer.email_key == "anna@example.org"
    assert signature.signer.consent_partner is True
    assert signature.signer.consent_organiser is False


def test_a_signature_says_what_its_webhook_events_need() -> None:
    """The slug, the partner's code and `auto_goal` (each step a milestone) travel with the
    signature to the signing plan, which writes its events without reading the petition."""
    signature = signed(example_entry(), PARTNER.code)
    assert (signature.petition_slug, signature.partner_code) == (example_petition().slug,
                                                                 PARTNER.code)  # fmt: skip
    assert signature.auto_goal is False
    stepping = entry_of(dataclasses.replace(example_petition(), auto_goal=True))
    assert signed(stepping).auto_goal is True


def test_unknown_partner_code_is_kept_without_a_partner_id() -> None:
    signature = signed(example_entry(), partner="nobody-we-know")
    assert signature.partner_id is None
    assert signature.unknown_partner == "nobody-we-know"


def test_invalid_partner_code_is_recorded_as_unknown() -> None:
    signature = signed(example_entry(), partner=INVALID_CODE)
    assert (signature.partner_id, signature.unknown_partner) == (None, INVALID_CODE)


def test_no_partner_code_means_neither_partner_nor_unknown_partner() -> None:
    signature = signed(example_entry(), partner="")
    assert (signature.partner_id, signature.unknown_partner) == (None, None)


def test_partner_codes_are_matched_exactly() -> None:
    """The token carries the code as normalised when issued; another spelling is not ours."""
    signature = signed(example_entry(), partner="Partner-A")
    assert (signature.partner_id, signature.unknown_partner) == (None, "Partner-A")


@pytest.mark.parametrize(("token_lang", "recorded"), [("ru", "ru"), ("en", "en")])
def test_form_language_comes_from_the_token(token_lang: str, recorded: str) -> None:
    assert signed(example_entry(), lang=token_lang).lang == recorded


@pytest.mark.parametrize("token_lang", ["", "de", "xx", "RU"])
def test_form_language_falls_back_to_the_petitions_own(token_lang: str) -> None:
    signature = signed(example_entry(), lang=token_lang)
    assert signature.lang == "en"
    assert signature.consent.lang == "en"


def test_consent_record_names_the_partner_and_organiser_in_the_form_language() -> None:
    signature = signed(example_entry(), partner=PARTNER.code, lang="ru")
    consent = signature.consent
    assert consent.lang == "ru"
    assert "Partner A Org" in consent.text
    assert "All Out" in consent.text
    # The Russian notice first; the English original follows under its heading, as the form
    # shows it while no native speaker has signed the Russian off.
    translation, heading, original = consent.text.partition(
        "\n\n" + i18n.catalog("ru")("consent_original") + "\n"
    )
    assert translation.startswith("Подписывая петицию") and "By signing" not in translation
    assert heading and original.startswith("By signing")


def test_a_reviewed_translation_is_recorded_without_the_original(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    en, ru = i18n.catalog("en"), i18n.catalog("ru")
    signed_off = {
        key: {"by": "A. Reviewer", "on": "2026-12-01", "english": i18n.digest(en(key))}
        for key in i18n.CONSENT_KEYS
    }
    monkeypatch.setattr(ru, "review", signed_off)
    entry = example_entry()
    consent = signed(entry, partner=PARTNER.code, lang="ru").consent
    assert "By signing" not in consent.text and "Подписывая петицию" in consent.text
    # A review of older English does not hold: the original is shown (and recorded) again.
    monkeypatch.setattr(ru, "review", {**signed_off, "consent_notice": {"english": "0" * 12}})
    assert "By signing" in signed(example_entry(), lang="ru").consent.text


def test_consent_record_without_a_partner_does_not_mention_one() -> None:
    with_partner = signed(example_entry(), partner=PARTNER.code).consent
    without = signed(example_entry(), partner="").consent
    unknown = signed(example_entry(), partner="nobody-we-know").consent
    assert "Partner A Org" not in without.text
    assert "Keep me informed by" not in without.text
    assert unknown == without
    assert with_partner.version != without.version


def test_consent_record_is_the_same_whatever_the_signer_ticked() -> None:
    """The record is of the words shown, not of the answers: ticking changes the flags only."""
    ticked = signed(
        example_entry(), partner=PARTNER.code, consent_partner="on", consent_organiser="on"
    )
    unticked = signed(example_entry(), partner=PARTNER.code)
    assert ticked.consent == unticked.consent
    assert (ticked.signer.consent_organiser, ticked.signer.consent_partner) == (True, True)
    assert (unticked.signer.consent_organiser, unticked.signer.consent_partner) == (False, False)


def test_token_is_accepted_up_to_the_end_of_its_lifetime() -> None:
    clock = Clock()
    tokens = minter(clock)
    entry = example_entry()
    token = tokens.issue(entry.slug)
    clock.now += LIFETIME
    result = decide(entry, tokens, good_fields(token))
    assert result.signature is not None
    # The nonce outlives the last moment the token could be used.
    assert result.signature.nonce_expires_at > clock.now


def test_hidden_comment_is_not_recorded() -> None:
    signature = signed(example_entry(), comment="a comment the form did not show", country="ua")
    assert signature.signer.comment is None
    assert signature.signer.country == "UA"


# --- Closed petition -----------------------------------------------------------------------------


def test_closed_petition_is_refused() -> None:
    clock = Clock()
    tokens = minter(clock)
    entry = example_entry(status="closed")
    token = aged_token(clock, tokens, entry.slug)
    with pytest.raises(PetitionClosed) as caught:
        decide(entry, tokens, good_fields(token))
    assert caught.value.code == "petition_closed"


@pytest.mark.parametrize("token", ["forged.token.here", "", None])
def test_closed_petition_is_checked_before_the_token(token: str | None) -> None:
    entry = example_entry(status="closed")
    with pytest.raises(PetitionClosed):
        decide(entry, minter(Clock()), {"token": token, "name": "", HONEYPOT: "x"})


def test_closed_by_the_dashboard_even_if_the_file_says_open() -> None:
    """`Entry.status` decides, not the status in the imported petition file."""
    entry = example_entry(status="closed")
    assert entry.petition.status == "open"
    with pytest.raises(PetitionClosed):
        decide(entry, minter(Clock()), {})


# --- Token refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["", None, "not-a-token", "a.b.c", 42, "x" * 600])
def test_forged_or_empty_token_is_invalid_without_claims(token: object) -> None:
    refusal = token_refusal(example_entry(), minter(Clock()), good_fields("x") | {"token": token})
    assert refusal.code == "invalid_token"
    assert refusal.claims is None


def test_missing_token_is_invalid() -> None:
    fields = good_fields("")
    del fields["token"]
    refusal = token_refusal(example_entry(), minter(Clock()), fields)
    assert (refusal.code, refusal.claims) == ("invalid_token", None)


def test_token_signed_with_another_key_is_invalid_without_claims() -> None:
    clock = Clock()
    entry = example_entry()
    theirs = aged_token(clock, minter(clock, keys=("attacker",)), entry.slug, PARTNER.code)
    refusal = token_refusal(entry, minter(clock), good_fields(theirs))
    assert (refusal.code, refusal.claims) == ("invalid_token", None)


def test_expired_token_carries_its_claims() -> None:
    clock = Clock()
    tokens = minter(clock)
    entry = example_entry()
    token = tokens.issue(entry.slug, PARTNER.code, "ru")
    clock.now += LIFETIME + 1
    refusal = token_refusal(entry, tokens, good_fields(token))
    assert refusal.code == "expired_token"
    assert refusal.claims is not None
    assert (refusal.claims.partner, refusal.claims.lang) == (PARTNER.code, "ru")
    assert refusal.claims.petition == entry.slug


def test_too_fresh_token_says_when_to_retry_and_carries_its_claims() -> None:
    clock = Clock()
    tokens = minter(clock)
    entry = example_entry()
    token = tokens.issue(entry.slug, PARTNER.code, "ru")
    clock.now += 1
    refusal = token_refusal(entry, tokens, good_fields(token))
    assert refusal.code == "token_too_fresh"
    assert refusal.retry_after == MIN_AGE - 1
    assert refusal.claims is not None
    assert (refusal.claims.partner, refusal.claims.lang) == (PARTNER.code, "ru")


def test_another_petitions_token_is_wrong_petition_with_claims() -> None:
    clock = Clock()
    tokens = minter(clock)
    token = aged_token(clock, tokens, "another-petition", PARTNER.code, "ru")
    refusal = token_refusal(example_entry(), tokens, good_fields(token))
    assert refusal.code == "wrong_petition"
    assert refusal.claims is not None
    assert refusal.claims.petition == "another-petition"
    assert (refusal.claims.partner, refusal.claims.lang) == (PARTNER.code, "ru")


def test_token_is_checked_before_the_fields() -> None:
    bad_fields = {"name": "", "email": "nobody", "country": "XX", "consent_partner": "perhaps"}
    refusal = token_refusal(example_entry(), minter(Clock()), {"token": "forged", **bad_fields})
    assert not isinstance(refusal, FieldErrors)
    assert refusal.code == "invalid_token"


def test_expired_token_is_refused_before_invalid_fields() -> None:
    clock = Clock()
    tokens = minter(clock)
    entry = example_entry()
    token = tokens.issue(entry.slug)
    clock.now += LIFETIME + 1
    refusal = token_refusal(entry, tokens, {"token": token, "email": "nobody"})
    assert refusal.code == "expired_token"


# --- Field errors --------------------------------------------------------------------------------


def test_invalid_fields_with_a_good_token_carry_the_tokens_claims() -> None:
    clock = Clock()
    tokens = minter(clock)
    entry = example_entry()
    token = aged_token(clock, tokens, entry.slug, PARTNER.code, "ru")
    fields = {"token": token, "name": "", "email": "nobody", "country": "XX"}
    with pytest.raises(FieldErrors) as caught:
        decide(entry, tokens, fields)
    refusal = caught.value
    assert refusal.code == "invalid_fields"
    assert {field: key for field, (key, _) in refusal.errors.items()} == {
        "name": "error_required",
        "email": "error_email_invalid",
        "country": "error_country_invalid",
    }
    assert refusal.claims is not None
    assert (refusal.claims.partner, refusal.claims.lang) == (PARTNER.code, "ru")
    assert refusal.claims.petition == entry.slug


def test_required_country_follows_the_petition() -> None:
    clock = Clock()
    tokens = minter(clock)
    entry = entry_of(dataclasses.replace(example_petition(), country="required"))
    token = aged_token(clock, tokens, entry.slug)
    with pytest.raises(FieldErrors) as caught:
        decide(entry, tokens, good_fields(token))
    assert set(caught.value.errors) == {"country"}


# --- Honeypot ------------------------------------------------------------------------------------


def test_honeypot_is_the_website_field() -> None:
    assert decision.HONEYPOT == "website"


def test_filled_honeypot_is_accepted_without_a_signature() -> None:
    clock = Clock()
    tokens = minter(clock)
    entry = example_entry()
    token = aged_token(clock, tokens, entry.slug, PARTNER.code, "ru")
    result = decide(entry, tokens, good_fields(token, **{HONEYPOT: "https://spam.example"}))
    assert result.signature is None
    assert (result.claims.partner, result.claims.lang) == (PARTNER.code, "ru")


def test_filled_honeypot_hides_field_errors() -> None:
    """A bot is told "signed", whatever else it typed."""
    clock = Clock()
    tokens = minter(clock)
    entry = example_entry()
    token = aged_token(clock, tokens, entry.slug)
    result = decide(entry, tokens, {"token": token, "email": "nobody", HONEYPOT: "x"})
    assert result.signature is None


@pytest.mark.parametrize("empty", ["", None])
def test_empty_honeypot_is_ignored(empty: str | None) -> None:
    honeypot: dict[str, Any] = {HONEYPOT: empty}
    signature = signed(example_entry(), **honeypot)
    assert signature.petition_id == ENTRY_ID


def test_honeypot_with_a_forged_token_is_still_invalid_token() -> None:
    fields = good_fields("forged") | {HONEYPOT: "https://spam.example"}
    refusal = token_refusal(example_entry(), minter(Clock()), fields)
    assert (refusal.code, refusal.claims) == ("invalid_token", None)


def test_honeypot_with_a_too_fresh_token_is_still_refused() -> None:
    clock = Clock()
    tokens = minter(clock)
    entry = example_entry()
    token = tokens.issue(entry.slug)
    refusal = token_refusal(entry, tokens, good_fields(token, **{HONEYPOT: "x"}))
    assert refusal.code == "token_too_fresh"


# --- Boxes that were not shown -------------------------------------------------------------------


@pytest.mark.parametrize("partner", ["", "nobody-we-know"])
def test_partner_consent_without_a_known_partner_is_recorded_false(partner: str) -> None:
    signature = signed(
        example_entry(), partner=partner, consent_partner="on", consent_organiser="on"
    )
    assert signature.signer.consent_partner is False
    assert signature.signer.consent_organiser is True  # that box was shown, and stays ticked


def test_organiser_consent_without_an_organiser_is_recorded_false() -> None:
    entry = without_organiser()
    signature = signed(entry, partner=PARTNER.code, consent_organiser="on", consent_partner="on")
    assert signature.signer.consent_organiser is False
    assert signature.signer.consent_partner is True  # that box was shown, and stays ticked


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_no_organiser_consent_record_has_no_organiser_option(lang: str) -> None:
    signature = signed(without_organiser(), partner="", lang=lang, consent_organiser="on")
    assert signature.signer.consent_organiser is False
    assert "All Out" not in signature.consent.text
    with_organiser = signed(example_entry(), partner="", lang=lang).consent
    assert signature.consent.text != with_organiser.text
    translation = signature.consent.text.split("\n\n")[0]  # the English original may follow
    assert translation.count("\n") == 0  # the notice alone: no option was shown


def test_neither_box_shown_neither_recorded() -> None:
    signature = signed(
        without_organiser(), partner="", consent_organiser="true", consent_partner=True
    )
    assert (signature.signer.consent_organiser, signature.signer.consent_partner) == (False, False)


def test_organiser_missing_only_in_a_translation_falls_back_to_the_original() -> None:
    """A translation that leaves `organiser` out has the original's: the box was shown."""
    head, header, ru = EXAMPLE_TEXT.partition("\n[translations.ru]\n")
    text = head + header + ru.replace('organiser = "All Out"\n', "")
    assert text.count("organiser =") == 1
    petition = parse(text)
    assert petition.texts["ru"].organiser == "All Out"
    signature = signed(entry_of(petition), lang="ru", consent_organiser="on")
    assert signature.signer.consent_organiser is True


# --- Properties ----------------------------------------------------------------------------------

_FIELD_VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=30))


@given(
    st.dictionaries(
        st.sampled_from(["name", "email", "country", "comment", "consent_organiser"]),
        _FIELD_VALUES,
    )
)
def test_a_forged_token_always_gives_invalid_token(fields: dict[str, Any]) -> None:
    with pytest.raises(TokenError) as caught:
        decide(example_entry(), minter(Clock()), {**fields, "token": "forged"})
    assert caught.value.code == "invalid_token"
    assert caught.value.claims is None


@given(
    st.dictionaries(
        st.sampled_from(["name", "email", "country", "comment", "consent_partner", HONEYPOT]),
        _FIELD_VALUES,
    )
)
def test_a_good_token_gives_a_decision_or_field_errors_with_claims(fields: dict[str, Any]) -> None:
    clock = Clock()
    tokens = minter(clock)
    entry = example_entry()
    token = aged_token(clock, tokens, entry.slug, PARTNER.code, "ru")
    try:
        result = decide(entry, tokens, {**fields, "token": token})
    except FieldErrors as refusal:
        assert refusal.errors
        assert refusal.claims is not None and refusal.claims.partner == PARTNER.code
        return
    assert result.claims.partner == PARTNER.code
    if fields.get(HONEYPOT):
        assert result.signature is None
    else:
        assert result.signature is not None
        assert result.signature.partner_id == PARTNER.id


# --- A genuine token sent too fast hears of its fields first (issue 16) -------------------------


def test_an_empty_form_sent_at_once_hears_required_not_too_fast() -> None:
    clock = Clock()
    tokens = minter(clock)
    entry = example_entry()
    token = tokens.issue(entry.slug, PARTNER.code, "ru")
    clock.now += 1
    with pytest.raises(FieldErrors) as caught:
        decide(entry, tokens, {"token": token, "name": "", "email": ""})
    assert set(caught.value.errors) >= {"name", "email"}
    assert caught.value.claims is not None and caught.value.claims.partner == PARTNER.code
    # Filled in, it is "too fresh", and says when to retry.
    refusal = token_refusal(entry, tokens, good_fields(token))
    assert refusal.code == "token_too_fresh"
    # A bot that fills the honeypot learns nothing of the fields.
    hp = token_refusal(entry, tokens, {"token": token, "name": "", HONEYPOT: "x"})
    assert hp.code == "token_too_fresh" and not isinstance(hp, FieldErrors)


def test_the_nonce_is_kept_while_the_token_itself_lives() -> None:
    clock = Clock()
    entry = example_entry()
    short = FormTokens(("key-one",), lifetime=600, min_age=MIN_AGE, clock=clock)
    token = aged_token(clock, short, entry.slug)
    raised = minter(clock)  # TOKEN_LIFETIME raised to 7200 after a restart
    signature = decide(entry, raised, good_fields(token)).signature
    assert signature is not None
    assert signature.nonce_expires_at == int(clock.now) - MIN_AGE - 10 + 600 + NONCE_GRACE


# --- The aggregate limit -------------------------------------------------------------------------


def test_over_the_network_limit_the_signature_is_quarantined_not_refused() -> None:
    clock = Clock()
    tokens = minter(clock)
    asked: list[bool] = []

    def over() -> bool:
        asked.append(True)
        return True

    token = aged_token(clock, tokens, example_entry().slug)
    result = decide(example_entry(), tokens, good_fields(token), over_network_limit=over)
    assert result.over_network_limit and asked == [True]
    assert result.signature is not None and result.signature.status == "quarantined"
    assert not result.signature.counts
    under = decide(example_entry(), tokens, good_fields(token), over_network_limit=lambda: False)
    assert under.signature is not None and under.signature.counts
    assert not under.over_network_limit


def test_only_an_otherwise_accepted_submission_spends_the_network_budget() -> None:
    """A refused submission or the honeypot's never asks: garbage cannot use up a network's
    budget and push its honest signers into quarantine."""
    clock = Clock()
    tokens = minter(clock)
    asked: list[bool] = []

    def over() -> bool:
        asked.append(True)
        return False

    token = aged_token(clock, tokens, example_entry().slug)
    with pytest.raises(FieldErrors):
        decide(example_entry(), tokens, {"token": token, "name": "", "email": "x"},
               over_network_limit=over)  # fmt: skip
    with pytest.raises(TokenError):
        decide(example_entry(), tokens, good_fields("forged"), over_network_limit=over)
    honeypot = decide(example_entry(), tokens, good_fields(token, **{HONEYPOT: "x"}),
                      over_network_limit=over)  # fmt: skip
    assert honeypot.signature is None
    assert asked == []
