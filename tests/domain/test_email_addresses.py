"""Email addresses: IDNA 2008 keys, invisible characters refused, lengths, no DNS, and the keys
that addresses stored under the old rules get (`stored_email_key`)."""

from __future__ import annotations

import socket
from typing import Any

import email_validator
import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.domain.validation import (
    EMAIL_MAX,
    FieldErrors,
    _Invalid,
    email_key_of,
    stored_email_key,
    strip_invisible,
    validate_signer,
)


def email_error(email: str) -> str:
    with pytest.raises(FieldErrors) as caught:
        validate_signer({"name": "A", "email": email})
    assert set(caught.value.errors) == {"email"}
    return caught.value.errors["email"][0]


def test_sharp_s_is_not_folded_into_ss() -> None:
    # Two registered domains: IDNA 2003 (Python's codec) made them one, so the second real
    # signer was taken for a repeat.
    assert email_key_of("a@faß.de") == "a@xn--fa-hia.de"
    assert email_key_of("a@fass.de") == "a@fass.de"


def test_final_sigma_is_kept() -> None:
    assert email_key_of("a@βόλος.com") != email_key_of("a@βόλοσ.com")


@pytest.mark.parametrize(
    ("email", "key"),
    [
        ("a@ÖBB.at", "a@xn--bb-eka.at"),
        ("a@öbb.at", "a@xn--bb-eka.at"),
        ("a@xn--bb-eka.at", "a@xn--bb-eka.at"),
        ("a@EXAMPLE.ORG", "a@example.org"),
        ("a@ＥＸＡＭＰＬＥ.org", "a@example.org"),  # full-width letters, mapped by UTS-46
        ("ivan@ПОЧТА.РФ", "ivan@xn--80a1acny.xn--p1ai"),
    ],
)
def test_domain_is_uts46_mapped_and_ascii(email: str, key: str) -> None:
    assert email_key_of(email) == key


def test_local_part_is_lower_cased() -> None:
    assert email_key_of("Anna.Ivanova+Petition@Example.org") == "anna.ivanova+petition@example.org"


def test_unicode_local_part_is_accepted_and_lower_cased() -> None:
    assert email_key_of("Юля@почта.рф") == "юля@xn--80a1acny.xn--p1ai"
    assert email_key_of("Ü@bücher.de") == "ü@xn--bcher-kva.de"


def test_lower_casing_that_decomposes_gives_a_stable_key() -> None:
    key = email_key_of("İ@example.org")  # lower-cased to i and a combining dot above
    assert email_key_of(key) == key


def test_surrounding_space_is_trimmed() -> None:
    signer = validate_signer({"name": "A", "email": " \t Anna@Example.org \n"})
    assert signer.email == "Anna@Example.org"
    assert signer.email_key == "anna@example.org"


@pytest.mark.parametrize(
    "char",
    [
        "\u200b",  # zero width space
        "\u200c",  # zero width non-joiner
        "\u200d",  # zero width joiner
        "\u2060",  # word joiner
        "\ufeff",  # zero width no-break space
        "\u202a", "\u202b", "\u202c", "\u202d", "\u202e",  # embeddings, overrides
        "\u2066", "\u2067", "\u2068", "\u2069",  # isolates
        "\u00ad",  # soft hyphen
        "\u200e",  # left-to-right mark
        "\u3164",  # Hangul filler (a letter to Unicode, and email-validator lets it through)
        "\ufe0f",  # variation selector
        "\U000e0041",  # tag latin capital letter A
        "\u00a0",  # no-break space
    ],
)  # fmt: skip
@pytest.mark.parametrize("where", ["local", "domain"])
def test_invisible_characters_are_refused(char: str, where: str) -> None:
    email = f"an{char}na@example.org" if where == "local" else f"anna@exa{char}mple.org"
    assert email_error(email) == "error_email_invalid"


@given(
    st.emails(),
    st.sampled_from("\u200b\u200c\u200d\u2060\ufeff\u202e\u2066\u00ad\u3164"),
    st.floats(0, 1),
)
def test_an_invisible_character_anywhere_inside_is_refused(
    email: str, char: str, where: float
) -> None:
    at = 1 + int(where * (len(email) - 2))
    with pytest.raises(_Invalid):
        email_key_of(email[:at] + char + email[at:])


def test_invisible_characters_in_a_unicode_domain_are_refused() -> None:
    assert email_error("a@fa\u00adß.de") == "error_email_invalid"
    assert email_error("a@почта\u200b.рф") == "error_email_invalid"


@pytest.mark.parametrize(
    "email",
    [
        '"quoted"@example.org',  # quoted local parts
        "a@[192.0.2.1]",  # domain literals
        "Anna <a@example.org>",  # display names
        "a@b.test",  # special-use domains
        "a@localhost",
        "a@ab--c.org",  # two letters and two hyphens: not an A-label
        "a@xn--n3h.net",  # a snowman: IDNA 2003 took it, IDNA 2008 does not
        "a@☃.net",
        "a@b.c",  # no one-letter top-level domain
        "a＠example.org",  # the full-width at-sign
    ],
)
def test_refused_addresses(email: str) -> None:
    assert email_error(email) == "error_email_invalid"


def test_too_long_addresses() -> None:
    domain = ".".join(["d" * 60] * 4) + ".org"  # 247 characters
    assert len(email_key_of("abcdef@" + domain)) == EMAIL_MAX
    assert email_error("abcdefg@" + domain) == "error_email_too_long"
    assert email_error("a" * 300 + "@example.org") == "error_email_too_long"


def test_length_counts_utf8_bytes() -> None:
    # 250 characters but 313 bytes: RFC 5321 limits what a mail server gets, in bytes.
    email = "ж" * 63 + "@" + ".".join(["d" * 60] * 3) + ".org"
    assert len(email) < EMAIL_MAX < len(email.encode())
    assert email_error(email) == "error_email_too_long"


def test_local_part_is_at_most_64_characters() -> None:
    assert email_key_of("x" * 64 + "@example.org")
    assert email_error("x" * 65 + "@example.org") == "error_email_invalid"


def test_no_dns_look_up(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("validation touched the network")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket, "socket", no_network)
    # This domain is not registered: a signer is not refused for what DNS says today.
    assert email_key_of("a@no-such-domain-for-petition-widget.org") == (
        "a@no-such-domain-for-petition-widget.org"
    )


def test_library_defaults_changed_elsewhere_do_not_matter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(email_validator, "ALLOW_QUOTED_LOCAL", True)
    monkeypatch.setattr(email_validator, "CHECK_DELIVERABILITY", True)
    monkeypatch.setattr(email_validator, "TEST_ENVIRONMENT", True)
    with pytest.raises(_Invalid, match="error_email_invalid"):
        email_key_of('"quoted"@example.org')
    with pytest.raises(_Invalid, match="error_email_invalid"):
        email_key_of("a@b.test")


def test_strip_invisible() -> None:
    assert strip_invisible("a\u200bn\u00adn\u202ea@exa\ufeffmple.org") == "anna@example.org"


@pytest.mark.parametrize(
    ("stored", "key"),
    [
        ("Anna@Example.org", "anna@example.org"),
        ("a@faß.de", "a@xn--fa-hia.de"),  # its old key was a@fass.de
        ("an\u200bna@example.org", "anna@example.org"),  # kept, as the address it shows
        ("a@fa\u200css.de", "a@fass.de"),  # IDNA 2003 deleted the joiner too
        ("x@b.test", None),  # refused now for other reasons: the caller keeps its key
        ("x@xn--n3h.net", None),
    ],
)
def test_stored_email_key(stored: str, key: str | None) -> None:
    assert stored_email_key(stored) == key
