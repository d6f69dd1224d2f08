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


def plain(text: str) -> list[str]:
    """A petition text as plain paragraphs, for a printed page (the delivery pack): emphasis
    dropped, a link as its text and its address, list items marked with a bullet or their
    number. Parsed by the same rules as `render`."""
    paragraphs: list[str] = []
    markers: list[str] = []  # per open list: "•" or the next number, as text
    prefix = ""
    for token in _md.parse(text):
        if token.type in ("bullet_list_open", "ordered_list_open"):
            bullet = token.type == "bullet_list_open"
            markers.append("•" if bullet else str(token.attrGet("start") or 1))
        elif token.type in ("bullet_list_close", "ordered_list_close"):
            markers.pop()
        elif token.type == "list_item_open" and markers:
            marker = markers[-1]
            prefix = "  " * (len(markers) - 1) + (marker if marker == "•" else marker + ".") + " "
            if marker != "•":
                markers[-1] = str(int(marker) + 1)
        elif token.type == "inline":
            paragraphs.append(prefix + _inline_text(token.children or []))
            prefix = ""
    return [p for p in paragraphs if p.strip()]


def _inline_text(children: list[Any]) -> str:
    parts: list[str] = []
    href = ""
    for child in children:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type == "softbreak":
            parts.append(" ")
        elif child.type == "hardbreak":
            parts.append("\n")
        elif child.type == "link_open":
            href = str(child.attrGet("href") or "")
        elif child.type == "link_close":
            # An autolink's text is its address already.
            if href and not "".join(parts).endswith(href):
                parts.append(f" ({href})")
            href = ""
    return "".join(parts).strip()
