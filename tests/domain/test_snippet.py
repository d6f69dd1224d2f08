"""The embed snippet (pure)."""

from __future__ import annotations

from server.domain import snippet
from server.domain.placeholder import Space

BASE = "https://petitions.example.org"


def test_snippet_with_every_option() -> None:
    text = snippet.embed(
        BASE, "save-x", "ngo-a", "ru", "#C0392B", look=snippet.looks("dark", "compact", "")
    )
    lines = text.splitlines()
    assert lines[0].startswith('<div class="petition-widget-space"')
    assert lines[1] == (
        f'<script async src="{BASE}/embed.js" data-petition="save-x" data-partner="ngo-a" '
        'data-lang="ru" data-accent="#C0392B" data-theme="dark" data-layout="compact"></script>'
    )
    assert lines[-1] == "</div></div>"
    assert (
        f'src="{BASE}/widget/save-x?partner=ngo-a&amp;lang=ru&amp;accent=%23C0392B&amp;'
        'theme=dark&amp;layout=compact"' in text
    )
    assert 'loading="lazy"' in text and "<noscript>" in text


def test_snippet_leaves_out_what_is_empty_or_malformed() -> None:
    text = snippet.embed(BASE, "save-x", '"><script>', "r u", "red")
    assert "data-partner" not in text and "data-lang" not in text and "data-accent" not in text
    assert "<script>" not in text.replace("<script async", "")
    assert snippet.widget_path("save-x") == "/widget/save-x"
    assert snippet.looks("light", "full", "solid") == []  # the defaults are not written
    assert snippet.looks("purple", "tiny", "red") == []


def test_partner_codes_are_normalised_like_the_widget_does() -> None:
    assert snippet.clean(" NGO-A ") == ("ngo-a", "", "")


def test_the_placeholder_reserves_the_given_heights() -> None:
    text = snippet.embed(BASE, "save-x", space=Space(1200, 900))
    # A fixed height first (browsers without container query units), then 1,200 px at 375 px
    # wide falling linearly to 900 px at 800 px (and at most 1,268 px, at 280 px).
    assert (
        '<div style="min-height:1200px;'
        'min-height:clamp(900px,calc(1200px - (100cqw - 375px) * 0.7059),1268px)">' in text
    )
    assert 'style="container-type:inline-size"' in text  # 100cqw: the placeholder's width


def test_without_inline_style_the_rules_go_to_a_style_sheet() -> None:
    text = snippet.loader_markup(BASE, "save-x", space=Space(1200, 900), inline_style=False)
    assert "style=" not in text
    rules = snippet.space_rules(Space(1200, 900))
    assert rules.startswith(".petition-widget-space{container-type:inline-size}")
    assert ".petition-widget-space>div{min-height:1200px;" in rules
