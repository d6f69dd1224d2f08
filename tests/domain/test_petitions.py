from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from server.domain.petitions import Petition, PetitionFileError, load_file, parse
from server.web import bundle

MINIMAL = """\
slug = "minimal"
goal = 100
title = "A title"
summary = "A summary"
target = "Someone"
statement = "We ask."
"""


def test_the_example_petition_has_every_part_of_the_seed() -> None:
    p = load_file(bundle.EXAMPLE_PETITION)
    en, ru = p.texts["en"], p.texts["ru"]
    assert p.slug == "save-russian-lgbt-network" and p.goal == 50_000 and p.status == "open"
    assert en.title == "The work of the Russian LGBT+ movement is at risk"
    assert en.summary.startswith("After ordering the closure of Memorial")
    assert "Chechnya since 2017" in en.body and "- Support Charitable Foundation Sphere" in en.body
    assert en.target == "the Russian government"
    assert "immediately stop the prosecution" in en.statement
    assert "foreign agents" in en.legal_notice
    assert [(u.date, u.kind) for u in en.updates] == [
        (datetime.date(2022, 4, 28), "correction"),
        (datetime.date(2022, 4, 21), "update"),
    ]
    assert "St. Petersburg" in en.updates[1].text
    assert "was implied" in en.updates[0].text
    assert ru.title.startswith("Работа российского ЛГБТ+")
    assert "иностранного агента" in ru.legal_notice
    assert [(u.date, u.kind) for u in ru.updates] == [(u.date, u.kind) for u in en.updates]
    assert all(u.text != e.text for u, e in zip(ru.updates, en.updates, strict=True))
    assert p.languages == ("en", "ru")


def test_minimal_file_and_defaults() -> None:
    p = parse(MINIMAL)
    assert (p.lang, p.status, p.country, p.comment, p.frame_ancestors) == (
        "en",
        "open",
        "optional",
        "hidden",
        (),
    )
    assert p.texts["en"].body == ""


def test_retention_defaults_to_180_days_after_closing_and_0_keeps_for_ever() -> None:
    assert parse(MINIMAL).retention_days == 180
    assert parse(MINIMAL + "[retention]\ndays = 0\n").retention_days == 0
    assert parse(MINIMAL + "[retention]\ndays = 30\n").retention_days == 30
    for bad in ("days = -1", 'days = "180"', "days = 1.5", "weeks = 2"):
        with pytest.raises(PetitionFileError, match="retention"):
            parse(MINIMAL + f"[retention]\n{bad}\n")


def test_document_round_trip() -> None:
    p = load_file(bundle.EXAMPLE_PETITION)
    assert Petition.from_document(json.loads(json.dumps(p.to_document()))) == p


def test_partial_translation_falls_back_to_the_original() -> None:
    p = parse(MINIMAL + '\n[translations.ru]\ntitle = "Заголовок"\n')
    assert p.in_language("ru").title == "Заголовок"
    assert p.in_language("ru").summary == "A summary"
    assert p.in_language("de").title == "A title"


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (MINIMAL.replace("goal = 100", "goal = 0"), 2, "goal must be a whole number"),
        (MINIMAL.replace("goal = 100", "goal = -5"), 2, "goal must be a whole number"),
        (MINIMAL.replace("goal = 100", 'goal = "many"'), 2, "goal must be a whole number"),
        (MINIMAL.replace("goal = 100", "goal = 1.5"), 2, "goal must be a whole number"),
        (MINIMAL.replace("goal = 100", "goal = true"), 2, "goal must be a whole number"),
        (MINIMAL.replace("goal = 100", 'goal = "²"'), 2, "goal must be a whole number"),
        (MINIMAL.replace("goal = 100", 'goal = "100"'), 2, "goal must be a whole number"),
        (MINIMAL.replace("goal = 100\n", ""), None, "goal must be a whole number"),
        (MINIMAL + 'lang = "xx"\n', 7, "unknown language 'xx'"),
        (MINIMAL + '[translations.ja]\ntitle = "題名"\n', 7, "unknown language 'ja'"),
        (MINIMAL.replace('slug = "minimal"', 'slug = "Not A Slug"'), 1, "slug must be"),
        (MINIMAL.replace('title = "A title"', 'title = ""'), 3, "title is required"),
        (MINIMAL + 'status = "paused"\n', 7, "status must be one of"),
        (MINIMAL + 'colour = "red"\n', 7, "unknown key 'colour'"),
        (MINIMAL + '[form]\ncountry = "sometimes"\n', 8, "form.country must be one of"),
        (MINIMAL + '[[updates]]\ndate = "yesterday"\ntext = "x"\n', 8, "update date must be"),
        (
            MINIMAL + '[[updates]]\ndate = 2022-01-01\nkind = "rumour"\ntext = "x"\n',
            9,
            "update kind must be",
        ),
        (
            MINIMAL + '[embed]\nframe_ancestors = ["javascript:alert(1)"]\n',
            8,
            "frame_ancestors must be",
        ),
        (MINIMAL + 'share_url = "javascript:alert(1)"\n', 7, "share_url must be an http(s) URL"),
        (MINIMAL + "goal = 5\n", 7, "not valid TOML"),
        ("slug = \n", 1, "not valid TOML"),
    ],
)
def test_bad_files_name_the_line_and_field(text: str, line: int | None, words: str) -> None:
    with pytest.raises(PetitionFileError) as caught:
        parse(text, source="campaign.toml")
    message = str(caught.value)
    assert words in message
    assert message.startswith("campaign.toml")
    if line is not None and "not valid TOML" not in words:
        assert caught.value.line == line
    if "not valid TOML" in words:
        assert f"line {line}" in message


def test_translated_update_must_exist_in_the_original() -> None:
    text = (
        MINIMAL + '[[updates]]\ndate = 2022-01-01\ntext = "x"\n'
        '[[translations.ru.updates]]\ndate = 2022-02-02\ntext = "y"\n'
    )
    with pytest.raises(PetitionFileError, match="does not have"):
        parse(text)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(PetitionFileError, match="cannot read"):
        load_file(tmp_path / "missing.toml")
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(MINIMAL.replace("A title", "Caf\xe9").encode("latin-1"))
    with pytest.raises(PetitionFileError, match="cannot read"):
        load_file(bad)


# --- timezone (issue 16) -------------------------------------------------------------------------


def test_timezone_defaults_to_utc_and_takes_an_iana_name() -> None:
    base = 'slug = "tz"\ngoal = 10\ntitle = "T"\nsummary = "S"\ntarget = "X"\nstatement = "W"\n'
    assert parse(base).timezone == "UTC"
    moscow = parse('timezone = "Europe/Moscow"\n' + base)
    assert moscow.timezone == "Europe/Moscow" and str(moscow.zone) == "Europe/Moscow"
    assert Petition.from_document(moscow.to_document()).timezone == "Europe/Moscow"
    old = moscow.to_document()
    del old["timezone"]  # stored before the key existed
    assert Petition.from_document(old).timezone == "UTC"


@pytest.mark.parametrize("name", ["Mars/Olympus", "europe moscow", "../../etc/passwd", "", "UTC+3"])
def test_a_bad_timezone_is_a_field_error(name: str) -> None:
    text = (
        f'slug = "tz"\ngoal = 10\ntitle = "T"\nsummary = "S"\ntarget = "X"\nstatement = "W"\n'
        f'timezone = "{name}"\n'
    )
    if not name:
        assert parse(text).timezone == "UTC"  # empty: the default
        return
    with pytest.raises(PetitionFileError) as caught:
        parse(text, source="tz.toml")
    assert str(caught.value).startswith("tz.toml:7: timezone must be an IANA time zone name")


# --- [form] name_to_target and [public] by_country (issue 17) ---------------------------------


@pytest.mark.parametrize(
    ("text", "offered"),
    [("", "hidden"), ('[form]\nname_to_target = "hidden"\n', "hidden"),
     ('[form]\nname_to_target = "optional"\n', "optional")],
)  # fmt: skip
def test_name_to_target_is_hidden_unless_the_file_offers_it(text: str, offered: str) -> None:
    p = parse(MINIMAL + text)
    assert p.name_to_target == offered
    assert Petition.from_document(json.loads(json.dumps(p.to_document()))) == p


@pytest.mark.parametrize(
    ("text", "shown"),
    [("", False), ("[public]\nby_country = false\n", False),
     ("[public]\nby_country = true\n", True)],
)  # fmt: skip
def test_public_by_country_is_off_unless_the_file_turns_it_on(text: str, shown: bool) -> None:
    p = parse(MINIMAL + text)
    assert p.public_by_country is shown
    assert Petition.from_document(json.loads(json.dumps(p.to_document()))) == p


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ('[form]\nname_to_target = "required"\n', 8,
         "form.name_to_target must be one of optional, hidden"),
        ('[form]\nname_to_target = "Optional"\n', 8, "form.name_to_target must be one of"),
        ("[form]\nname_to_target = true\n", 8, "form.name_to_target must be one of"),
        ('[form]\nname_to_targets = "optional"\n', 8, "unknown key 'name_to_targets' in [form]"),
        ('[public]\nby_country = "yes"\n', 8, "public.by_country must be true or false"),
        ("[public]\nby_country = 1\n", 8, "public.by_country must be true or false"),
        ("[public]\nby_language = true\n", 8, "unknown key 'by_language' in [public]"),
        ('public = "by_country"\n', 7, "public must be a table ([public])"),
    ],
)  # fmt: skip
def test_bad_name_to_target_and_by_country_name_the_line(text: str, line: int, words: str) -> None:
    with pytest.raises(PetitionFileError) as caught:
        parse(MINIMAL + text, source="campaign.toml")
    assert words in str(caught.value) and str(caught.value).startswith("campaign.toml")
    assert caught.value.line == line
