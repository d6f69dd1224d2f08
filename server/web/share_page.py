"""The share page, `GET /p/{slug}[?partner=CODE&lang=LL]`: what a shared link opens.

Social networks and messengers read a link's Open Graph and Twitter card tags for its preview;
the widget's own document is a frame, not a page to share, so this page carries the tags and
shows the widget (through the loader, with the partner code, so a signature made from a shared
link stays attributed). Its `og:url` is the page's own address, partner code included.

The page loads nothing from elsewhere: `og:image` (the petition's optional `share_image`, an
https URL) is named in that tag only, for the network's crawler to fetch, and never loaded by
the page. Its CSP allows our own script and frame, and its one inline style by hash.
"""

from __future__ import annotations

import base64
import hashlib
import urllib.parse
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.domain import i18n, snippet
from server.domain.partners import CODE
from server.domain.petitions import Entry
from server.web.assets import compressed
from server.web.responses import not_found, templates
from server.web.services import Services, petition_endpoint
from server.web.widget import interface_languages, snippet_space

SHARE_MAX_AGE = 300  # the page holds no token and no count: a crawler's visit may be cached

# Open Graph wants a territory with the language; CLDR's likely territory for each catalog.
_OG_LOCALES = {
    "en": "en_US", "ar": "ar_AR", "de": "de_DE", "es": "es_ES", "fr": "fr_FR", "kk": "kk_KZ",
    "pt": "pt_PT", "ru": "ru_RU", "tr": "tr_TR", "uk": "uk_UA",
}  # fmt: skip


_CSS = (
    ":root{color-scheme:light;font:16px/1.5 system-ui,sans-serif;background:#f6f6f4}"
    "body{margin:0}main{max-width:800px;margin:0 auto;padding:16px 0}"
    "noscript a{display:block;padding:16px}"
)


def _csp(style_hash: str) -> str:
    return (
        "default-src 'none'; script-src 'self'; frame-src 'self'; "
        f"style-src 'sha256-{style_hash}'; img-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def _options(request: Request, entry: Entry) -> tuple[str, str]:
    """The partner code and language asked for, each checked against its format ("" else)."""
    params = request.query_params
    partner = (params.get("partner") or "").strip().lower()
    partner = partner if CODE.fullmatch(partner) else ""
    lang = params.get("lang") or ""
    lang = lang if lang in interface_languages(entry) else ""
    return partner, lang


@petition_endpoint(not_found)
async def share_page(request: Request, services: Services, entry: Entry) -> Response:
    partner, lang = _options(request, entry)
    # The tags' language is the one asked for, else the petition's own, never a negotiated
    # one: crawlers cache a preview per URL, whatever language they happened to send.
    shown = lang or entry.petition.lang
    t = i18n.catalog(shown)
    texts = entry.petition.in_language(shown)
    base = services.settings.base_url
    query = {k: v for k, v in (("partner", partner), ("lang", lang)) if v}
    own_url = f"{base}/p/{urllib.parse.quote(entry.slug)}"
    own_url += "?" + urllib.parse.urlencode(query) if query else ""
    # A registered partner's code adds its consent box to the widget: the space reserved too.
    space = snippet_space(entry, lang, partner=entry.partners.get(partner))
    # The placeholder's height goes in the page's one style sheet, allowed by its hash: this
    # page's CSP refuses style attributes.
    css = _CSS + snippet.space_rules(space)
    style_hash = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    context: dict[str, Any] = {
        "lang": shown,
        "dir": t.dir,
        "title": texts.title,
        "description": texts.summary,
        "url": own_url,
        "image": entry.petition.share_image,
        "og_locale": _OG_LOCALES.get(shown, ""),
        "css": css,
        "snippet": snippet.loader_markup(
            base, entry.slug, partner, lang, space=space, inline_style=False
        ),
        "widget_url": base + snippet.widget_path(entry.slug, partner, lang),
        "sign_text": t("sign_button"),
    }
    html = templates().get_template("share.html").render(context).encode()
    headers = {
        "Content-Security-Policy": _csp(style_hash),
        "Referrer-Policy": "no-referrer",
        "Cache-Control": f"public, max-age={SHARE_MAX_AGE}",
    }
    return compressed(request, html, "text/html; charset=utf-8", headers)


routes = [Route("/p/{slug}", share_page, methods=["GET", "HEAD"])]
