from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.domain.validation import (
    EMAIL_MAX,
    NAME_MAX,
    FieldErrors,
    _Invalid,
    email_key_of,
    normalise_name,
    parse_boolean,
    validate_signer,
)


def errors_of(fields: dict[str, Any], **modes: str) -> dict[str, str]:
    with pytest.raises(FieldErrors) as caught:
        validate_signer(fields, **modes)
    return {field: key for field, (key, _) in caught.value.errors.items()}


def test_valid_signer_is_normalised() -> None:
    signer = validate_signer(
        {
            "name": "  Анна \t Иванова ",
            "email": " Anna.I@Example.ORG ",
            "country": "ru",
            "consent_partner": "on",
        },
        country="optional",
    )
    assert signer.name == "Анна Иванова"
    assert signer.email == "Anna.I@Example.ORG"
    assert signer.email_key == "anna.i@example.org"
    assert signer.country == "RU"
    assert signer.consent_partner is True
    assert signer.consent_organiser is False


def test_all_field_errors_are_reported_at_once() -> None:
    errors = errors_of(
        {
            "name": "",
            "email": "nobody",
            "country": "XX",
            "comment": "x" * 1001,
            "consent_organiser": "perhaps",
        },
        country="required",
        comment="optional",
    )
    assert errors == {
        "name": "error_required",
        "email": "error_email_invalid",
        "country": "error_country_invalid",
        "comment": "error_comment_too_long",
        "consent_organiser": "error_not_boolean",
    }


def test_required_country_missing() -> None:
    assert errors_of({"name": "A", "email": "a@b.org"}, country="required") == {
        "country": "error_required"
    }


def test_hidden_fields_are_dropped_when_sent_but_still_checked() -> None:
    signer = validate_signer(
        {"name": "A", "email": "a@b.org", "country": "UA", "comment": "hi"},
        country="hidden",
        comment="hidden",
    )
    assert signer.country is None and signer.comment is None
    with pytest.raises(FieldErrors) as refused:
        validate_signer(
            {"name": "A", "email": "a@b.org", "country": "nonsense", "comment": "x" * 5000},
            country="hidden",
            comment="hidden",
        )
    assert set(refused.value.errors) == {"country", "comment"}


@pytest.mark.parametrize(
    "name",
    ["a\x00b", "a\x1bb", "bad\u202eeman", "\ud800", "priv\ue000ate", "nul\x7f"],
)
def test_names_with_controls_are_refused(name: str) -> None:
    with pytest.raises(_Invalid, match="error_name_invalid"):
        normalise_name(name)


def test_name_length_is_bounded_after_normalising() -> None:
    assert normalise_name("a" * NAME_MAX) == "a" * NAME_MAX
    with pytest.raises(_Invalid, match="error_name_too_long"):
        normalise_name("a" * (NAME_MAX + 1))


def test_name_keeps_joiners_and_marks_that_scripts_need() -> None:
    assert normalise_name("می\u200cخواهم") == "می\u200cخواهم"


# Bidi embeddings, overrides and isolates; the zero width space, word joiner and BOM.
HIDING = [*"\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069", "\u200b", "\u2060", "\ufeff"]


@pytest.mark.parametrize("char", HIDING, ids=lambda c: f"U+{ord(c):04X}")
def test_names_and_comments_that_hide_text_are_refused_field_by_field(char: str) -> None:
    with pytest.raises(FieldErrors) as refused:
        validate_signer(
            {"name": f"Anna{char}Petrova", "email": "a@b.org", "comment": f"Hello{char}there"},
            comment="optional",
        )
    assert refused.value.errors == {
        "name": ("error_name_invalid", {}),
        "comment": ("error_comment_invalid", {}),
    }


@pytest.mark.parametrize(
    "name",
    [
        "مریم\u200cسادات رضایی",  # Persian, with ZWNJ
        "می\u200cخواهم",  # Persian, ZWNJ inside a word
        "क्\u200dष",  # Devanagari with ZWJ (half form)
        "श्री\u200c राम",  # Devanagari with ZWNJ
        "\u200fسارا\u200f",  # RLM around an Arabic-script name
        "Anna\u200e (אנה)",  # LRM before Hebrew
        "Familie \U0001f469\u200d\U0001f469\u200d\U0001f467",  # an emoji sequence with ZWJ
    ],
)
def test_names_and_comments_keep_joiners_and_direction_marks(name: str) -> None:
    signer = validate_signer(
        {"name": name, "email": "a@b.org", "comment": name}, comment="optional"
    )
    assert signer.name == name and signer.comment == name


def test_name_is_nfc() -> None:
    assert normalise_name("Ame\u0301lie") == "Amélie"


@pytest.mark.parametrize(
    ("email", "key"),
    [
        ("A@B.ORG", "a@b.org"),
        ("  someone@example.org\n", "someone@example.org"),
        ("first.last+tag@sub.example.co.uk", "first.last+tag@sub.example.co.uk"),
        ("ivan@почта.рф", "ivan@xn--80a1acny.xn--p1ai"),
        ("Ü@Bücher.de", "ü@xn--bcher-kva.de"),
        ("a@Faß.de", "a@xn--fa-hia.de"),  # IDNA 2008: not fass.de, another domain
    ],
)
def test_email_keys(email: str, key: str) -> None:
    assert email_key_of(email) == key


@pytest.mark.parametrize(
    "email",
    [
        "",
        "plain",
        "@example.org",
        "a@",
        "a@b",
        "a@b.c",
        "a b@c.org",
        "a..b@c.org",
        ".a@c.org",
        "a.@c.org",
        "a@-c.org",
        "a@c-.org",
        "a@c..org",
        'q"uote@c.org',
        "a@c.123",
        "a@@c.org",
        "x" * 65 + "@c.org",
        "a\u200b@c.org",
        "a@c\u00ad.org",
    ],
)
def test_invalid_emails(email: str) -> None:
    with pytest.raises(_Invalid):
        email_key_of(email)


def test_provider_tricks_are_not_applied() -> None:
    assert email_key_of("a.b@gmail.com") != email_key_of("ab@gmail.com")
    assert email_key_of("ab+x@gmail.com") != email_key_of("ab@gmail.com")


def test_email_length_limit() -> None:
    long_domain = ".".join(["d" * 60] * 5) + ".org"
    assert len("a@" + long_domain) > EMAIL_MAX
    errors = errors_of({"name": "A", "email": "a@" + long_domain})
    assert errors == {"email": "error_email_too_long"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        (None, False),
        ("on", True),
        ("", False),
        ("0", False),
        ("TRUE", True),
    ],
)
def test_booleans(value: object, expected: bool) -> None:
    assert parse_boolean(value) is expected


@pytest.mark.parametrize("value", [1, 0, "maybe", [], {}])
def test_non_booleans_are_refused(value: object) -> None:
    with pytest.raises(_Invalid):
        parse_boolean(value)


# Property tests: whatever arrives, the answer is a Signer or FieldErrors, never a crash.

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3)
    ),
    max_leaves=8,
)


@given(
    st.dictionaries(
        st.sampled_from(
            ["name", "email", "country", "comment", "consent_partner", "consent_organiser", "x"]
        ),
        json_values,
    )
)
def test_any_json_shape_gives_signer_or_field_errors(fields: dict[str, Any]) -> None:
    try:
        signer = validate_signer(fields, country="optional", comment="optional")
    except FieldErrors as exc:
        assert exc.errors
    else:
        assert signer.name and signer.email_key == signer.email_key.lower()


@given(st.text())
def test_any_unicode_name(name: str) -> None:
    try:
        result = normalise_name(name)
    except _Invalid as exc:
        assert exc.key in ("error_required", "error_name_invalid", "error_name_too_long")
    else:
        assert result == result.strip() and 0 < len(result) <= NAME_MAX
        assert "  " not in result


@given(st.binary(max_size=300))
def test_any_bytes_as_email(raw: bytes) -> None:
    text = raw.decode("utf-8", errors="surrogateescape")
    try:
        key = email_key_of(text)
    except _Invalid:
        return
    assert "@" in key and key == key.strip() and len(key) <= EMAIL_MAX
    assert email_key_of(key) == key  # normalising twice changes nothing


@given(st.emails())
def test_generated_valid_emails_are_accepted_or_refused_cleanly(email: str) -> None:
    try:
        key = email_key_of(email)
    except _Invalid:
        return
    assert key == email_key_of(email.upper()) or not email.isascii()


def test_comment_line_breaks_from_a_form_are_kept() -> None:
    signer = validate_signer(
        {"name": "A", "email": "a@b.org", "comment": "first line\r\nsecond\tline"},
        comment="optional",
    )
    assert signer.comment == "first line\nsecond\tline"


@pytest.mark.parametrize("comment", ["bell\x07", "lone\rreturn", "over\u202eride"])
def test_comment_controls_are_refused(comment: str) -> None:
    errors = errors_of({"name": "A", "email": "a@b.org", "comment": comment}, comment="optional")
    assert errors == {"comment": "error_comment_invalid"}
