from __future__ import annotations

import datetime
import re
import string

import pytest

from server.domain import i18n


def test_every_catalog_has_exactly_the_english_keys() -> None:
    reference = i18n.CATALOGS["en"]
    for lang, catalog in i18n.CATALOGS.items():
        assert set(catalog.messages) == set(reference.messages), lang


def test_placeholders_match_english() -> None:
    def fields(text: str) -> set[str]:
        return {f for _, f, _, _ in string.Formatter().parse(text) if f}

    reference = i18n.CATALOGS["en"].messages
    for lang, catalog in i18n.CATALOGS.items():
        for key, text in catalog.messages.items():
            if isinstance(text, str):
                assert fields(text) == fields(reference[key]), (lang, key)


def test_russian_has_no_untranslated_english() -> None:
    for key, text in i18n.CATALOGS["ru"].messages.items():
        if isinstance(text, str):
            words = re.findall(r"[A-Za-z]{4,}", re.sub(r"\{\w+\}", "", text))
            assert set(words) <= {"JSON", "name", "example"}, (key, text)


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


def test_english_plural_and_grouping() -> None:
    en = i18n.catalog("en")
    assert en.plural("signed_count", 1) == "1 person has signed"
    assert en.plural("signed_count", 50_000) == "50,000 people have signed"


def test_dates() -> None:
    day = datetime.date(2022, 4, 21)
    assert i18n.catalog("en").date(day) == "April 21, 2022"
    assert i18n.catalog("ru").date(day) == "21 апреля 2022 г."


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("ru-RU,ru;q=0.9,en;q=0.8", ["ru", "ru", "en"]),
        ("en;q=0.1, ru", ["ru", "en"]),
        ("*", []),
        ("", []),
        ("de;q=0, ru", ["ru"]),
        ("fr;q=abc, ru", ["ru"]),
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
