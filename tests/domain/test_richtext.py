from __future__ import annotations

import pytest

from server.domain import richtext
from server.domain.richtext import render


def test_paragraphs_emphasis_links_lists() -> None:
    html = render("One *two* **three**.\n\nA [link](https://example.org).\n\n- a\n- b\n\n1. c")
    assert "<p>One <em>two</em> <strong>three</strong>.</p>" in html
    assert (
        '<a href="https://example.org" target="_blank" rel="noopener noreferrer nofollow">' in html
    )
    assert "<ul>\n<li>a</li>\n<li>b</li>\n</ul>" in html
    assert "<ol>" in html


@pytest.mark.parametrize(
    "payload",
    [
        "<script>alert(1)</script>",
        '<img src=x onerror="alert(1)">',
        "<svg onload=alert(1)>",
        '<a href="javascript:alert(1)">x</a>',
        "<iframe src=//evil.example></iframe>",
    ],
)
def test_raw_html_is_escaped(payload: str) -> None:
    html = render(payload)
    assert "<script" not in html and "<img" not in html and "<svg" not in html
    assert "<iframe" not in html and "<a " not in html
    assert "&lt;" in html


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JAVASCRIPT:alert(1)",
        "data:text/html,x",
        "vbscript:x",
        "java\tscript:x",
        "//evil.example/x",
    ],
)
def test_only_web_and_mail_links(url: str) -> None:
    assert "href" not in render(f"[click]({url})")


def test_mailto_links_allowed() -> None:
    assert 'href="mailto:team@example.org"' in render("[mail](mailto:team@example.org)")


def test_headings_images_code_stay_text() -> None:
    html = render("# Title\n\n![alt](https://example.org/x.png)\n\n    indented\n\n`code`")
    assert "<h1" not in html and "<img" not in html and "<code" not in html
    assert "<pre" not in html


def test_link_attribute_injection_is_encoded() -> None:
    html = render('[x](https://example.org/"onmouseover="alert(1))')
    assert 'onmouseover="' not in html


def test_plain_paragraphs_for_a_printed_page() -> None:
    text = (
        "Stop *this* now, see [the report](https://x.org) or <https://y.org>.\n\n"
        "- one\n- two\n\n3. a\n4. b"
    )
    assert richtext.plain(text) == [
        "Stop this now, see the report (https://x.org) or https://y.org.",
        "• one",
        "• two",
        "3. a",
        "4. b",
    ]
