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
