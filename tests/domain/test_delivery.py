"""The delivery pack's values, its CSV rule against formulas, and the PDF's refusal of a text
no installed font can draw (pure: no database)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from server.domain import delivery, delivery_pdf, export
from server.domain.petitions import Entry
from tests.support import petitions

HOUR = 3600
T0 = 1_764_000_000 // HOUR * HOUR


def entry(goal: int = 100) -> Entry:
    p = petitions.example()
    return Entry(1, p.slug, p, goal, "open", 0, {})


def test_milestones_are_the_hours_the_running_count_reached_them() -> None:
    hours = {T0 + 2 * HOUR: 30, T0: 20, T0 + 5 * HOUR: 60}
    found = delivery.milestones(hours, 100)
    assert [(m.percent, m.signatures, m.reached_at) for m in found] == [
        (25, 25, T0 + 2 * HOUR),  # 20 by then 50: the second hour
        (50, 50, T0 + 2 * HOUR),
        (75, 75, T0 + 5 * HOUR),
        (100, 100, T0 + 5 * HOUR),
    ]
    assert delivery.milestones({}, 100)[0].reached_at is None
    assert [m.signatures for m in delivery.milestones({}, 3)] == [1, 2, 3, 3]


@pytest.mark.parametrize(
    ("cell", "safe"),
    [
        ("=1+2", "'=1+2"),
        ("+7 999", "'+7 999"),
        ("-x", "'-x"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("Anna;=HYPERLINK(1)", "Anna;'=HYPERLINK(1)"),
        ("a,+b|-c\t@d", "a,'+b|'-c\t'@d"),
        # A tab is a separator and a danger at once: the = after two tabs is a cell's start too.
        ("a\t\t=1", "a\t'\t'=1"),
        ("Anna-Maria Petrova", "Anna-Maria Petrova"),
        ("Анна", "Анна"),
    ],
)
def test_csv_cells_cannot_become_formulas(cell: str, safe: str) -> None:
    assert export.neutralise(cell) == safe


def test_a_pack_counts_everyone_and_names_only_those_given() -> None:
    made = delivery.pack(
        entry(), lang="ru", total=12, opened_at=T0, closed_at=None, generated_at=T0,
        by_country={"RU": 9, "KZ": 2, None: 1}, hours={T0: 12},
        names=[delivery.Named("Анна", "RU")],
    )  # fmt: skip
    assert made.lang == "ru" and made.title == petitions.example().texts["ru"].title
    assert made.by_country == (("RU", 9), ("KZ", 2), (None, 1))  # the owner's: exact
    assert made.not_named == 11 and made.by_partner is None
    text = delivery.csv_text(made)
    assert "Анна,RU,Россия" in text and "\r\n\r\n" in text


@pytest.mark.parametrize(
    ("auto_goal", "stored_step", "goal"),
    [
        (False, 0, 4),  # the stored goal, even far past it
        (True, 0, 100),  # the step above 12 once the goal (4) is reached: what the widget shows
        (True, 200, 200),  # never below a step shown before (withdrawals since)
    ],
)
def test_the_goal_and_milestones_are_the_goal_shown(
    auto_goal: bool, stored_step: int, goal: int
) -> None:
    petition = dataclasses.replace(petitions.example(), auto_goal=auto_goal)
    shown = Entry(1, petition.slug, petition, 4, "open", 0, {}, shown_goal=stored_step)
    made = delivery.pack(
        shown, lang="en", total=12, opened_at=T0, closed_at=None, generated_at=T0,
        by_country={"RU": 12}, hours={T0: 12}, names=None,
    )  # fmt: skip
    assert made.goal == goal
    assert [m.signatures for m in made.milestones] == [goal * p // 100 for p in (25, 50, 75, 100)]
    assert f"goal,{goal}\r\n" in delivery.csv_text(made)


def test_a_language_the_petition_lacks_falls_back_to_its_own() -> None:
    made = delivery.pack(
        entry(), lang="ar", total=0, opened_at=T0, closed_at=None, generated_at=T0,
        by_country={}, hours={}, names=None,
    )  # fmt: skip
    assert made.lang == "en" and made.names is None and made.not_named == 0


def test_a_character_no_font_has_is_refused_by_code_point() -> None:
    fonts = delivery_pdf.Fonts.find()
    latin_only = delivery_pdf.Fonts(fonts.regular, fonts.bold)  # no Arabic fallback
    made = delivery.pack(
        entry(), lang="en", total=1, opened_at=T0, closed_at=None,
        generated_at=int(time.time()), by_country={"EG": 1}, hours={T0: 1},
        names=[delivery.Named("محمد", "EG")],
    )  # fmt: skip
    if fonts.missing(["محمد"]) == []:
        delivery_pdf.render(made, fonts)  # with every installed font it draws
    with pytest.raises(delivery_pdf.MissingGlyphs) as refused:
        delivery_pdf.render(made, latin_only)
    assert "U+0645 ARABIC LETTER MEEM" in str(refused.value)
    assert "محمد" not in str(refused.value)  # never the name itself


def test_missing_fonts_say_what_to_install() -> None:
    nowhere = (Path("/nonexistent/font.ttf"),)
    with pytest.raises(delivery_pdf.MissingFonts, match="fonts-noto-core"):
        delivery_pdf.Fonts.find(regular=nowhere, bold=nowhere)
