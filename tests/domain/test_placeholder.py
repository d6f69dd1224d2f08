"""The placeholder's reserved height, estimated from the petition (pure). The estimates are
checked against Chromium's real heights in tests/browser/test_layout_shift_browser.py."""

from __future__ import annotations

import dataclasses

from server.domain.placeholder import Space
from tests.support import petitions

EXAMPLE = petitions.example()


def test_narrow_columns_are_taller_and_russian_is_the_tallest() -> None:
    en, ru = Space.estimate(EXAMPLE, "en"), Space.estimate(EXAMPLE, "ru")
    assert en.narrow > en.wide and ru.narrow > ru.wide
    assert ru.narrow > en.narrow
    assert Space.tallest(EXAMPLE, ["en", "ru"]) == Space(
        max(en.narrow, ru.narrow), max(en.wide, ru.wide)
    )


def test_compact_is_shorter_and_parts_count() -> None:
    full = Space.estimate(EXAMPLE, "en")
    assert Space.estimate(EXAMPLE, "en", "compact").narrow < full.narrow
    no_country = dataclasses.replace(EXAMPLE, country="hidden")
    assert Space.estimate(no_country, "en").narrow < full.narrow
    with_comment = dataclasses.replace(EXAMPLE, comment="optional")
    assert Space.estimate(with_comment, "en").narrow > full.narrow


def test_the_name_to_target_box_and_its_target_count() -> None:
    offered = dataclasses.replace(EXAMPLE, name_to_target="optional")
    for lang in ("en", "ru"):
        assert Space.estimate(offered, lang).narrow > Space.estimate(EXAMPLE, lang).narrow
    long_target = dataclasses.replace(EXAMPLE.texts["en"], target="the President, " * 8)
    longer = dataclasses.replace(offered, texts={**offered.texts, "en": long_target})
    assert Space.estimate(longer, "en").narrow > Space.estimate(offered, "en").narrow


def test_a_partners_consent_box_is_reserved_with_its_name_and_english_original() -> None:
    # The widget adds "Keep me informed by {partner}" for a registered partner's code: a box of
    # at least one 24 px line and its paragraph (15.2 px) in English, and in Russian (whose
    # consent texts are unreviewed) the English original under it as well.
    for lang, least in (("en", 39), ("ru", 39 + 20)):
        bare, theirs = Space.estimate(EXAMPLE, lang), Space.estimate(EXAMPLE, lang, partner="P")
        assert theirs.narrow - bare.narrow >= least and theirs.wide - bare.wide >= least
    ru_added = (
        Space.estimate(EXAMPLE, "ru", partner="P").narrow - Space.estimate(EXAMPLE, "ru").narrow
    )
    en_added = (
        Space.estimate(EXAMPLE, "en", partner="P").narrow - Space.estimate(EXAMPLE, "en").narrow
    )
    assert ru_added > en_added
    # A long name wraps to more lines; a snippet without data-lang takes the tallest language.
    long_name = "Friends of the Earth and of Every Other Planet, International"
    assert (
        Space.estimate(EXAMPLE, "en", partner=long_name).narrow
        > Space.estimate(EXAMPLE, "en", partner="P").narrow
    )
    assert Space.tallest(EXAMPLE, ["en", "ru"], partner="P") == Space.estimate(
        EXAMPLE, "ru", partner="P"
    )
