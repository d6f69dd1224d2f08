"""The embed snippet (pure)."""

from __future__ import annotations

from server.domain import snippet

BASE = "https://petitions.example.org"


def test_snippet_with_every_option() -> None:
    text = snippet.embed(BASE, "save-x", "ngo-a", "ru", "#C0392B")
    assert text.splitlines()[0] == (
        f'<script async src="{BASE}/embed.js" data-petition="save-x" data-partner="ngo-a" '
        'data-lang="ru" data-accent="#C0392B"></script>'
    )
    assert f'src="{BASE}/widget/save-x?partner=ngo-a&amp;lang=ru&amp;accent=%23C0392B"' in text
    assert 'loading="lazy"' in text and "<noscript>" in text


def test_snippet_leaves_out_what_is_empty_or_malformed() -> None:
    text = snippet.embed(BASE, "save-x", '"><script>', "r u", "red")
    assert "data-partner" not in text and "data-lang" not in text and "data-accent" not in text
    assert "<script>" not in text.replace("<script async", "")
    assert snippet.widget_path("save-x") == "/widget/save-x"


def test_partner_codes_are_normalised_like_the_widget_does() -> None:
    assert snippet.clean(" NGO-A ") == ("ngo-a", "", "")
