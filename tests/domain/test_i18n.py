"""The catalogs and what CLDR (through Babel) adds to them: every catalog complete, plural
forms for exactly the categories CLDR gives each language, numbers, dates, direction, country
names, the consent review records, and the choice of a language."""

from __future__ import annotations

import datetime
import re
import string
import tomllib
from typing import Any

import babel
import pytest

from server.domain import countries, i18n

LANGUAGES = sorted(i18n.LANGUAGES)
OTHERS = [lang for lang in LANGUAGES if lang != "en"]
# Languages not written in Latin letters: an English word of four letters or more in one of
# their messages is an untranslated string (these few excepted).
NON_LATIN = {"ru", "uk", "kk", "ar"}
ALLOWED_LATIN = {"JSON", "name", "example", "email"}


def fields(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f}


def test_the_ten_languages_ship() -> None:
    assert {"en", "ru", "uk", "kk", "de", "fr", "es", "pt", "tr", "ar"} <= i18n.LANGUAGES


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_catalog_has_exactly_the_english_keys(lang: str) -> None:
    reference = i18n.CATALOGS["en"]
    catalog = i18n.CATALOGS[lang]
    assert set(catalog.messages) == set(reference.messages)
    if catalog.dashboard is not None:
        assert reference.dashboard is not None
        assert set(catalog.dashboard) == set(reference.dashboard)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_placeholders_match_english(lang: str) -> None:
    reference = i18n.CATALOGS["en"]
    catalog = i18n.CATALOGS[lang]
    for key, text in catalog.messages.items():
        if isinstance(text, str):
            assert fields(text) == fields(reference.messages[key]), key
        else:
            # Arabic names none, one and two without a numeral ("وقّع شخصان").
            for form in text.values():
                assert fields(form) <= {"count"}, key
    for key, text in (catalog.dashboard or {}).items():
        assert reference.dashboard is not None
        assert fields(text) == fields(reference.dashboard[key]), key


@pytest.mark.parametrize("lang", LANGUAGES)
def test_plural_messages_have_every_cldr_category_and_no_other(lang: str) -> None:
    catalog = i18n.CATALOGS[lang]
    expected = set(babel.Locale.parse(lang).plural_form.tags) | {"other"}
    plurals = {k: v for k, v in catalog.messages.items() if isinstance(v, dict)}
    assert plurals, "signed_count at least is a plural message"
    for key, forms in plurals.items():
        assert set(forms) == expected, key
    # Every category is reachable by some count, and the text for it is the one shown.
    for n in range(0, 2_000):
        assert catalog.plural("signed_count", n) == plurals["signed_count"][
            catalog.plural_category(n)
        ].format(count=catalog.number(n))


@pytest.mark.parametrize("lang", sorted(NON_LATIN & i18n.LANGUAGES))
def test_no_untranslated_english(lang: str) -> None:
    catalog = i18n.CATALOGS[lang]
    texts = [t for t in catalog.messages.values() if isinstance(t, str)]
    texts += [f for t in catalog.messages.values() if isinstance(t, dict) for f in t.values()]
    texts += list((catalog.dashboard or {}).values())
    for text in texts:
        words = re.findall(r"[A-Za-z]{4,}", re.sub(r"\{\w+\}|`[^`]*`|pw[op]_", "", text))
        assert set(words) <= ALLOWED_LATIN | {
            "CSV",
            "Excel",
            "Markdown",
            "HTML",
            "UTC",
            "Mastodon",
        }, text


@pytest.mark.parametrize("lang", OTHERS)
def test_consent_texts_carry_a_review_record(lang: str) -> None:
    """Each consent text is "unreviewed", or signed off by a named person on a date against the
    English it translates (docs/translating.md). A sign-off of older English fails here, so
    that whoever changes the English sets the translations back to "unreviewed"."""
    catalog = i18n.CATALOGS[lang]
    assert set(catalog.review) == set(i18n.CONSENT_KEYS)
    for key, record in catalog.review.items():
        if record == i18n.UNREVIEWED:
            assert not catalog.reviewed(key)
            continue
        assert isinstance(record, dict) and set(record) == {"by", "on", "english"}, key
        assert record["by"].strip() and isinstance(record["on"], datetime.date), key
        assert record["english"] == i18n.digest(i18n.catalog("en")(key)), (
            f"{lang}.{key} was reviewed against other English: review it again"
        )
        assert catalog.reviewed(key)


def test_english_is_the_original() -> None:
    assert not i18n.catalog("en").unreviewed_consent
    assert i18n.catalog("en").review == {}


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "Подписали 0 человек"),
        (1, "Подписал 1 человек"),
        (2, "Подписали 2 человека"),
        (4, "Подписали 4 человека"),
        (5, "Подписали 5 человек"),
        (11, "Подписали 11 человек"),
        (12, "Подписали 12 человек"),
        (21, "Подписал 21 человек"),
        (22, "Подписали 22 человека"),
        (111, "Подписали 111 человек"),
        (50_000, "Подписали 50\u00a0000 человек"),
    ],
)
def test_russian_plural_forms(n: int, text: str) -> None:
    assert i18n.catalog("ru").plural("signed_count", n) == text


@pytest.mark.parametrize(
    ("n", "category"),
    [(0, "zero"), (1, "one"), (2, "two"), (3, "few"), (10, "few"), (11, "many"), (99, "many"),
     (100, "other"), (102, "other"), (103, "few")],
)  # fmt: skip
def test_arabic_has_six_plural_categories(n: int, category: str) -> None:
    assert i18n.catalog("ar").plural_category(n) == category


def test_english_plural_and_grouping() -> None:
    en = i18n.catalog("en")
    assert en.plural("signed_count", 1) == "1 person has signed"
    assert en.plural("signed_count", 50_000) == "50,000 people have signed"


@pytest.mark.parametrize(
    ("lang", "written"),
    [("en", "1,234,567"), ("ru", "1\u00a0234\u00a0567"), ("de", "1.234.567"),
     ("fr", "1\u202f234\u202f567"), ("ar", "1,234,567"), ("kk", "1\u00a0234\u00a0567")],
)  # fmt: skip
def test_numbers_in_cldr_default_digits(lang: str, written: str) -> None:
    catalog = i18n.catalog(lang)
    assert catalog.number(1_234_567) == written
    # CLDR's default numbering system for Arabic is the Latin digits (CLDR 42 on).
    assert catalog.numbering_system == babel.Locale.parse(lang).default_numbering_system
    assert catalog.number_format["samples"][1] == [1_234_567, written]


def test_placeholder_numbers_are_written_in_the_language() -> None:
    assert i18n.catalog("de")("goal", goal=50_000) == "Ziel: 50.000"
    assert i18n.catalog("en")("goal", goal=50_000) == "Goal: 50,000"


def test_dates() -> None:
    day = datetime.date(2022, 4, 21)
    assert i18n.catalog("en").date(day) == "April 21, 2022"
    assert i18n.catalog("ru").date(day) == "21 апреля 2022\u202fг."
    assert i18n.catalog("de").date(day) == "21. April 2022"


def test_direction_comes_from_cldr() -> None:
    assert [lang for lang in LANGUAGES if i18n.catalog(lang).dir == "rtl"] == ["ar"]


def test_a_catalog_for_a_language_cldr_does_not_know_is_refused() -> None:
    with pytest.raises(babel.UnknownLocaleError):
        i18n.Catalog("qqq", {"signed_count": {"other": "{count}"}})


def test_a_new_catalog_needs_no_meta() -> None:
    """Everything but the messages comes from CLDR: a file of messages is a language."""
    with (i18n._LOCALES / "en.toml").open("rb") as f:
        data: dict[str, Any] = tomllib.load(f)
    pl = i18n.Catalog("pl", {k: v for k, v in data.items() if k != "dashboard"})
    assert pl.number(1234567) == "1\u00a0234\u00a0567"
    assert pl.plural_categories == {"one", "few", "many", "other"}
    assert pl.country("DE") == "Niemcy"
    assert pl.dir == "ltr" and pl.name == "polski"


def test_country_names_in_every_language() -> None:
    assert len(countries.CODES) == 249
    assert {"DE", "RU", "UA", "KZ", "EG", "PS", "TW"} <= countries.CODES
    assert not {"EU", "UN", "ZZ", "XK", "001"} & countries.CODES
    for lang in LANGUAGES:
        names = dict(countries.choices(lang))
        assert set(names) == countries.CODES
        assert names["DE"] == babel.Locale.parse(lang).territories["DE"]
    assert countries.name("DE", "ar") == "ألمانيا"
    assert countries.name("DE", "xx") == "Germany"
    first = [code for code, _ in countries.choices("ru")][:2]
    assert first == ["AU", "AT"]  # Австралия, Австрия: sorted as Russian readers expect


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("ru-RU,ru;q=0.9,en;q=0.8", ["ru", "ru", "en"]),
        ("en;q=0.1, ru", ["ru", "en"]),
        ("*", []),
        ("", []),
        ("de;q=0, ru", ["ru"]),
        ("fr;q=abc, ru", ["ru"]),
        ("de-CH, fr;q=0.5", ["de", "fr"]),
        ("pt-BR", ["pt"]),
        ("zh_Hant_TW", ["zh"]),
    ],
)
def test_accept_language(header: str, expected: list[str]) -> None:
    assert i18n.parse_accept_language(header) == expected


def test_choose_language_order() -> None:
    offered = ("en", "ru")
    assert i18n.choose_language("ru", "en", offered, "en") == "ru"
    assert i18n.choose_language("ru-RU", "", offered, "en") == "ru"
    assert i18n.choose_language("de", "ru,en", offered, "en") == "ru"
    assert i18n.choose_language(None, "de", offered, "en") == "en"
    assert i18n.choose_language(None, "ru", ("en",), "en") == "en"


@pytest.mark.parametrize(
    ("header", "chosen"),
    [("de-CH,de;q=0.9", "de"), ("pt-BR,pt;q=0.9,en;q=0.5", "pt"), ("es-419", "es"),
     ("fr-CA", "fr"), ("uk-UA,ru;q=0.5", "uk"), ("kk-KZ", "kk"), ("tr-TR", "tr"),
     ("ar-EG,ar;q=0.9", "ar"), ("ru-RU", "ru"), ("en-GB", "en"), ("ja-JP", "en")],
)  # fmt: skip
def test_regional_preferences_reach_their_language(header: str, chosen: str) -> None:
    assert i18n.choose_language(None, header, i18n.LANGUAGES, "en") == chosen
