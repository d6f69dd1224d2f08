"""Petition file keys for the partner and visitor experience: `auto_goal`, `[after_sign] url`,
`share_image` and named snippet configurations `[[embed.configs]]` (pure)."""

from __future__ import annotations

import pytest

from server.domain.petitions import EmbedConfig, Petition, PetitionFileError, parse

MINIMAL = """\
slug = "minimal"
goal = 100
title = "A title"
summary = "A summary"
target = "Someone"
statement = "We ask."
"""
CONFIGS = """
[[embed.configs]]
name = "ngo-a-dark"
partner = "ngo-a"
lang = "en"
theme = "dark"
accent = "#c0392b"
compact = true

[[embed.configs]]
name = "plain"
"""


def test_the_new_keys_and_their_defaults() -> None:
    plain = parse(MINIMAL)
    assert (plain.auto_goal, plain.after_sign_url, plain.share_image) == (False, "", "")
    assert plain.embed_configs == ()
    full = parse(
        'auto_goal = true\nshare_image = "https://example.org/card.png"\n'
        + MINIMAL
        + '\n[after_sign]\nurl = "https://example.org/donate"\n'
        + CONFIGS
    )
    assert full.auto_goal and full.after_sign_url == "https://example.org/donate"
    assert full.share_image == "https://example.org/card.png"
    assert full.embed_configs == (
        EmbedConfig("ngo-a-dark", "ngo-a", "en", "dark", "#c0392b", True),
        EmbedConfig("plain"),
    )
    assert Petition.from_document(full.to_document()) == full


def test_documents_stored_before_the_keys_still_load() -> None:
    document = parse(MINIMAL).to_document()
    for key in ("auto_goal", "after_sign_url", "share_image", "embed_configs"):
        del document[key]
    assert Petition.from_document(document) == parse(MINIMAL)


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("auto_goal = 1\n" + MINIMAL, 1, "auto_goal must be true or false"),
        ('share_image = "http://example.org/a.png"\n' + MINIMAL, 1,
         "share_image must be an https URL"),
        (MINIMAL + '[after_sign]\nurl = "javascript:alert(1)"\n', 8,
         "after_sign.url must be an https URL"),
        (MINIMAL + '[after_sign]\nurl = "http://example.org/"\n', 8,
         "after_sign.url must be an https URL"),
        (MINIMAL + '[after_sign]\nlink = "https://example.org/"\n', 8,
         "unknown key 'link' in [after_sign]"),
        (MINIMAL + CONFIGS + '\n[[embed.configs]]\nname = "third"\ntheme = "purple"\n', 21,
         "embed.configs[2].theme must be one of light, dark, auto"),
        (MINIMAL + CONFIGS.replace('accent = "#c0392b"', 'accent = "red"'), 13,
         "embed.configs[0].accent must be a colour"),
        (MINIMAL + CONFIGS.replace('lang = "en"', 'lang = "ru"'), 11,
         "embed.configs[0].lang must be one of the petition's languages (en)"),
        (MINIMAL + CONFIGS.replace('partner = "ngo-a"', 'partner = "NGO A"'), 10,
         "embed.configs[0].partner must be a partner code"),
        (MINIMAL + CONFIGS.replace('compact = true', 'compact = "yes"'), 14,
         "embed.configs[0].compact must be true or false"),
        (MINIMAL + CONFIGS.replace('name = "plain"', 'name = "ngo-a-dark"'), 17,
         "embed.configs[1].name 'ngo-a-dark' is used twice"),
        (MINIMAL + CONFIGS.replace('name = "plain"', 'name = "Plain!"'), 17,
         "embed.configs[1].name must be"),
        (MINIMAL + CONFIGS.replace('name = "plain"', 'name = "plain"\nsize = 3'), 18,
         "unknown key 'size' in [[embed.configs]] number 2"),
    ],
)  # fmt: skip
def test_bad_values_name_the_line_and_field(text: str, line: int, words: str) -> None:
    with pytest.raises(PetitionFileError) as caught:
        parse(text, source="campaign.toml")
    assert words in str(caught.value)
    assert caught.value.line == line, str(caught.value)
