"""The delivery pack's values, its CSV rule against formulas, and the PDF's refusal of a text
no installed font can draw (pure: no database)."""

from __future__ import annotations

import dataclasses
import re
import shutil
import time
from pathlib import Path

import pytest

from server.domain import delivery, delivery_pdf, export
from server.domain.petitions import Entry, Petition, Texts
from tests.support import petitions
from tests.support.pdf import nfkc, text_of

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
    assert made.not_named == 11 and made.by_partner is None
    text = delivery.csv_text(made)
    assert "Анна,RU,Россия" in text and "\r\n\r\n" in text


def small_countries(lang: str = "en", petition: Petition | None = None) -> delivery.Pack:
    p = petition or petitions.example()
    return delivery.pack(
        Entry(1, p.slug, p, 100, "open", 0, {}), lang=lang, total=30, opened_at=T0,
        closed_at=None, generated_at=T0, by_country={"KZ": 3, "RU": 12, None: 2, "AM": 13},
        hours={T0: 30}, names=None,
    )  # fmt: skip


def test_countries_under_10_have_no_number_in_the_pack() -> None:
    """The pack reaches the petition's target: a country of 3 signers is "fewer than 10", as
    everywhere but the owner's dashboard; the cells of 10 and more and the total stay exact."""
    made = small_countries()
    assert made.by_country == (("AM", 13), ("RU", 12), ("KZ", None), (None, None))
    assert made.total == 30
    sheet = delivery.csv_text(made)
    assert "country,country_name,signatures\r\nAM,Armenia,13\r\nRU,Russia,12\r\n" in sheet
    assert "\r\nKZ,Kazakhstan,<10\r\n,Country not given,<10\r\n" in sheet
    assert "\r\nsignatures,30\r\n" in sheet
    assert ",3\r\n" not in sheet and ",2\r\n" not in sheet


def _arabic() -> Petition:
    base = petitions.example()
    texts = Texts(title="عريضة", summary="نص", target="الحكومة", statement="نطالب.")
    return dataclasses.replace(base, texts={**base.texts, "ar": texts})


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext is missing")
@pytest.mark.parametrize(
    ("lang", "words"),
    [
        ("en", ("Armenia 13", "Russia 12", "Kazakhstan fewer than 10",
                "Country not given fewer than 10", "Signatures: 30",
                "Countries with fewer than 10 signatures are shown without their number")),
        ("ru", ("Армения 13", "Россия 12", "Казахстан меньше 10",
                "Страна не указана меньше 10", "Подписей: 30")),
        ("ar", ("13", "12", "30", "أقل", "من", "البلدان", "عددها")),
    ],
)  # fmt: skip
def test_the_pdf_says_fewer_than_10_in_the_pack_language(lang: str, words: tuple[str]) -> None:
    made = small_countries(lang, _arabic())
    assert made.lang == lang
    text = text_of(delivery_pdf.render(made, delivery_pdf.Fonts.find()))
    for word in words:
        assert nfkc(word) in text, word
    numbers = re.findall(r"\d+", text)
    assert "3" not in numbers and "2" not in numbers  # KZ's 3 and the 2 without a country
    if lang != "ar":  # pdftotext gives right-to-left lines back in an order of its own
        heading, end = (made.catalog(k) for k in ("delivery_by_country", "delivery_milestones"))
        countries = text.split(heading)[1].split(end)[0]
        assert set(re.findall(r"\d+", countries)) == {"13", "12", "10"}


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
