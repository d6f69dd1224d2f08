"""Petition texts are written in a small, safe subset of Markdown and rendered to HTML here.

Allowed: paragraphs, *emphasis*, **strong**, [links](https://...), <https://autolinks>, bullet
and numbered lists, hard line breaks. Raw HTML is escaped (never passed through), headings,
images, code and quotes stay plain text, and links may only point to http(s) or mailto URLs, so
a petition file cannot inject markup or scripts into a partner's page.
"""

from __future__ import annotations

import functools
from typing import Any

from markdown_it import MarkdownIt
from markupsafe import Markup

_ALLOWED_SCHEMES = ("http://", "https://", "mailto:")

_DISABLED_RULES = [
    "code",
    "fence",
    "blockquote",
    "hr",
    "html_block",
    "heading",
    "lheading",
    "backticks",
    "image",
    "html_inline",
]


def _validate_link(url: str) -> bool:
    return url.strip().lower().startswith(_ALLOWED_SCHEMES)


def _render_link_open(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
    # Links open in a new tab: the widget lives in a partner's page, which must stay open.
    tokens[idx].attrSet("target", "_blank")
    tokens[idx].attrSet("rel", "noopener noreferrer nofollow")
    return str(self.renderToken(tokens, idx, options, env))


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.disable(_DISABLED_RULES)
    md.validateLink = _validate_link  # type: ignore[method-assign]
    md.add_render_rule("link_open", _render_link_open)
    return md


_md = _parser()


@functools.lru_cache(maxsize=1024)  # petition texts are few and rendered on every page view
def render(text: str) -> str:
    """HTML for a petition text. Safe to insert into a page as is."""
    return str(_md.render(text)).strip()


def markup(text: str) -> Markup:
    """`render` marked safe for templates: its output is escaped Markdown by construction."""
    return Markup(render(text))  # noqa: S704 - the parser escapes raw HTML
