"""The embed snippet a partner pastes, built from its parts (pure).

The same text comes out of `petition-widget partners add`, the dashboard's snippet generator
and the partner's own view, so partners never copy a hand-edited variant. Every part is
checked against its format before it goes into an HTML attribute, and escaped all the same.
"""

from __future__ import annotations

import html
import re
import urllib.parse

from server.domain.partners import CODE

# The height of the `<noscript>` iframe, which nothing resizes: the tallest page of the widget
# at a phone's width (375 px), in every language, form with errors, thank-you and
# check-your-email step alike, for the example petition with a partner (both consent boxes).
# tests/browser/test_no_javascript_browser.py measures them in Chromium and fails when one is
# taller than this, or when this is more than 15 % above the tallest (docs/widget.md has the
# figures). A petition with a longer title or summary than the example's needs more.
NOSCRIPT_HEIGHT = 1600

_HEX_COLOUR = re.compile(r"#[0-9a-fA-F]{3}|#[0-9a-fA-F]{6}")
_LANG = re.compile(r"[a-z]{2,3}")


def clean(partner: str = "", lang: str = "", accent: str = "") -> tuple[str, str, str]:
    """The options that are well formed, "" for the others."""
    partner = partner.strip().lower()
    accent = accent.strip()
    return (
        partner if CODE.fullmatch(partner) else "",
        lang if _LANG.fullmatch(lang) else "",
        accent if _HEX_COLOUR.fullmatch(accent) else "",
    )


def embed(base_url: str, slug: str, partner: str = "", lang: str = "", accent: str = "") -> str:
    """The `<script>` tag, with a `<noscript>` iframe for readers without JavaScript."""
    partner, lang, accent = clean(partner, lang, accent)
    attributes = [("src", f"{base_url}/embed.js"), ("data-petition", slug)]
    for name, value in (("data-partner", partner), ("data-lang", lang), ("data-accent", accent)):
        if value:
            attributes.append((name, value))
    tag = " ".join(f'{name}="{html.escape(value)}"' for name, value in attributes)
    frame = html.escape(base_url + widget_path(slug, partner, lang, accent))
    return (
        f"<script async {tag}></script>\n"
        f'<noscript><iframe src="{frame}" title="Petition" loading="lazy" '
        f'style="width:100%;height:{NOSCRIPT_HEIGHT}px;border:0"></iframe></noscript>'
    )


def widget_path(
    slug: str, partner: str = "", lang: str = "", accent: str = "", *, preview: bool = False
) -> str:
    """The widget document's path with these options (with `preview`, the dashboard's preview
    frame, whose form does not sign)."""
    partner, lang, accent = clean(partner, lang, accent)
    options = (("partner", partner), ("lang", lang), ("accent", accent))
    query = {k: v for k, v in options if v} | ({"preview": "1"} if preview else {})
    path = f"/widget/{urllib.parse.quote(slug)}"
    return path + ("?" + urllib.parse.urlencode(query) if query else "")
