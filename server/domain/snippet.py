"""The embed snippet a partner pastes, built from its parts (pure).

The same text comes out of `petition-widget partners add`, the dashboard's snippet generator
and the partner's own view, so partners never copy a hand-edited variant. Every part is
checked against its format before it goes into an HTML attribute, and escaped all the same.

The snippet is a sized placeholder with the loader inside it: the placeholder keeps the
widget's space in the host's own markup from the first paint (`placeholder.Space`), and the
loader puts the frame into it at that height, so nothing below it moves. A snippet pasted
before placeholders existed (the bare `<script>`) keeps working as it did.
"""

from __future__ import annotations

import html
import re
import urllib.parse

from server.domain.partners import CODE
from server.domain.petitions import THEMES
from server.domain.placeholder import Space

# The height of the `<noscript>` iframe, which nothing resizes: the tallest page of the widget
# at a phone's width (375 px), in every language, form with errors, thank-you and
# check-your-email step alike, for the example petition with a partner (both consent boxes).
# tests/browser/test_no_javascript_browser.py measures them in Chromium and fails when one is
# taller than this, or when this is more than 15 % above the tallest (docs/widget.md has the
# figures). A petition with a longer title or summary than the example's needs more.
NOSCRIPT_HEIGHT = 1600

_HEX_COLOUR = re.compile(r"#[0-9a-fA-F]{3}|#[0-9a-fA-F]{6}")
_LANG = re.compile(r"[a-z]{2,3}")
#: The placeholder's class: the loader fills an element of this class around its script.
SPACE_CLASS = "petition-widget-space"
#: Reserved when nothing is known of the petition: its tallest language (Russian) as the
#: example petition measures, at 375 and 800 px.
DEFAULT_SPACE = Space(1275, 965)


def clean(partner: str = "", lang: str = "", accent: str = "") -> tuple[str, str, str]:
    """The options that are well formed, "" for the others."""
    partner = partner.strip().lower()
    accent = accent.strip()
    return (
        partner if CODE.fullmatch(partner) else "",
        lang if _LANG.fullmatch(lang) else "",
        accent if _HEX_COLOUR.fullmatch(accent) else "",
    )


# `data-theme` → the `color-scheme` of the frame element (light, the default, needs none).
_SCHEMES = {"dark": "dark", "auto": "light dark"}


def looks(theme: str = "", layout: str = "", background: str = "") -> list[tuple[str, str]]:
    """The look options that differ from the defaults, as (name, value)."""
    found = []
    if theme in THEMES and theme != "light":
        found.append(("theme", theme))
    if layout == "compact":
        found.append(("layout", layout))
    if background == "transparent":
        found.append(("background", background))
    return found


def loader_markup(
    base_url: str,
    slug: str,
    partner: str = "",
    lang: str = "",
    accent: str = "",
    *,
    look: list[tuple[str, str]] | None = None,
    space: Space = DEFAULT_SPACE,
    inline_style: bool = True,
    noscript: str = "",
) -> str:
    """The placeholder with the loader's `<script>` in it (and `noscript`, for readers without
    JavaScript: it takes the reserved space then). Without `inline_style` the placeholder's
    height is left to the page's own stylesheet (`space_rules`), for pages whose CSP refuses
    style attributes."""
    partner, lang, accent = clean(partner, lang, accent)
    attributes = [("src", f"{base_url}/embed.js"), ("data-petition", slug)]
    options = (("partner", partner), ("lang", lang), ("accent", accent), *(look or []))
    attributes += [(f"data-{name}", value) for name, value in options if value]
    tag = " ".join(f'{name}="{html.escape(value)}"' for name, value in attributes)
    outer = ' style="container-type:inline-size"' if inline_style else ""
    inner = f' style="{space.css()}"' if inline_style else ""
    lines = [f'<div class="{SPACE_CLASS}"{outer}><div{inner}>', f"<script async {tag}></script>"]
    return "\n".join([*lines, *([noscript] if noscript else []), "</div></div>"])


def space_rules(space: Space) -> str:
    """The placeholder's CSS as a style sheet's rules (for `inline_style=False`)."""
    return f".{SPACE_CLASS}{{container-type:inline-size}}.{SPACE_CLASS}>div{{{space.css()}}}"


def embed(
    base_url: str,
    slug: str,
    partner: str = "",
    lang: str = "",
    accent: str = "",
    *,
    look: list[tuple[str, str]] | None = None,
    space: Space = DEFAULT_SPACE,
) -> str:
    """The snippet: the placeholder, the loader and a `<noscript>` iframe for readers without
    JavaScript."""
    partner, lang, accent = clean(partner, lang, accent)
    frame = html.escape(base_url + widget_path(slug, partner, lang, accent, look=look))
    # The frame element takes the theme's colour scheme, as the loader gives its own: a
    # browser paints a frame whose scheme differs from its element's on an opaque backdrop, so
    # a dark transparent widget would be a black box.
    scheme = _SCHEMES.get(dict(look or []).get("theme", ""), "")
    noscript = (
        f'<noscript><iframe src="{frame}" title="Petition" loading="lazy" '
        f'style="width:100%;height:{NOSCRIPT_HEIGHT}px;border:0'
        f'{";color-scheme:" + scheme if scheme else ""}"></iframe></noscript>'
    )
    return loader_markup(
        base_url, slug, partner, lang, accent, look=look, space=space, noscript=noscript
    )


def widget_path(
    slug: str,
    partner: str = "",
    lang: str = "",
    accent: str = "",
    *,
    look: list[tuple[str, str]] | None = None,
    preview: bool = False,
) -> str:
    """The widget document's path with these options (with `preview`, the dashboard's preview
    frame, whose form does not sign)."""
    partner, lang, accent = clean(partner, lang, accent)
    options = (("partner", partner), ("lang", lang), ("accent", accent), *(look or []))
    query = {k: v for k, v in options if v} | ({"preview": "1"} if preview else {})
    path = f"/widget/{urllib.parse.quote(slug)}"
    return path + ("?" + urllib.parse.urlencode(query) if query else "")
