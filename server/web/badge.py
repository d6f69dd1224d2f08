"""The count badge: `GET /badge/{slug}.svg` draws "12,345 signed of 50,000" for any page,
README or newsletter that can show an image, with no script and no request but the image.

The drawing is pure (`render`); the endpoint reads the count from the in-memory registry, as
the public API does, and answers with an ETag and a short public cache lifetime, so badges on
busy pages cost a `304` or nothing. The text is numbers and fixed words only, escaped anyway.
Text widths are estimated from Verdana's advance widths and pinned with `textLength`, so the
badge looks the same in every renderer.
"""

from __future__ import annotations

import hashlib
from xml.sax.saxutils import escape

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.domain import i18n
from server.domain.petitions import Entry
from server.web.services import Services, petition_endpoint

MAX_AGE = 60  # seconds a browser or cache may show a badge without asking again
STALE = 600  # seconds a cache may keep showing one while it asks
HEIGHT = 20
PADDING = 6
OPEN_COLOUR = "#1f5fbf"  # the widget's default accent; white text on it passes WCAG AA
CLOSED_COLOUR = "#5b5f66"
REST_COLOUR = "#3d4148"

# Verdana 11px advance widths (the font shields.io badges use); anything else counts as wide
# (Cyrillic, Arabic: look at the rendered SVG when a catalog's phrases are new).
_WIDTHS = {
    **dict.fromkeys("0123456789", 7.0),
    **dict.fromkeys(",.", 3.6),
    " ": 3.9,
    "\u00a0": 3.9,
    "\u202f": 3.0,
    **dict.fromkeys("iljI:", 3.1),
    **dict.fromkeys("frt", 4.3),
    **dict.fromkeys("mwMW", 10.0),
}
_DEFAULT_WIDTH = 7.0


def text_width(text: str) -> float:
    return sum(_WIDTHS.get(c, _DEFAULT_WIDTH) for c in text)


def phrases(count: int, goal: int, lang: str, is_open: bool) -> tuple[str, str]:
    """The badge's two halves in `lang` (English for a language without a catalog). The
    catalogs phrase them so that no plural form is needed ("Подписали: 12 345")."""
    t = i18n.catalog(lang)
    right = t("badge_goal", goal=goal)
    if not is_open:
        right += f" · {t('badge_closed')}"
    return t("badge_count", count=count), right


def render(count: int, goal: int, *, lang: str = "en", is_open: bool = True) -> str:
    """The badge as a standalone SVG document. For a right-to-left language the count comes
    first from the right, and each text is laid out right to left, as its readers read."""
    first, second = phrases(count, goal, lang, is_open)
    rtl = i18n.catalog(lang).dir == "rtl"
    first_width = round(text_width(first) + 2 * PADDING)
    second_width = round(text_width(second) + 2 * PADDING)
    width = first_width + second_width
    label = f"{first} {second}"
    colour = OPEN_COLOUR if is_open else CLOSED_COLOUR
    # (text, its box's x, its box's width, the box's colour), from the left.
    boxes = [(first, 0, first_width, colour), (second, first_width, second_width, REST_COLOUR)]
    if rtl:
        boxes = [(second, 0, second_width, REST_COLOUR), (first, second_width, first_width, colour)]
    direction = ' direction="rtl" unicode-bidi="embed"' if rtl else ""

    def text(x: float, value: str) -> str:
        # A faint shadow under each text, as badges usually have, then the text itself.
        length = text_width(value)
        anchor = f'x="{x + length:.1f}" text-anchor="start"' if rtl else f'x="{x:.1f}"'
        common = f'{anchor} textLength="{length:.1f}" lengthAdjust="spacingAndGlyphs"'
        return (
            f'<text {common} y="15" fill="#010101" fill-opacity=".3">{escape(value)}</text>'
            f'<text {common} y="14">{escape(value)}</text>'
        )

    rects = "".join(
        f'<rect x="{x}" width="{w}" height="{HEIGHT}" fill="{fill}"/>' for _, x, w, fill in boxes
    )
    texts = "".join(text(x + PADDING, value) for value, x, _, _ in boxes)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{HEIGHT}" '
        f'viewBox="0 0 {width} {HEIGHT}" role="img" aria-label="{escape(label)}">'
        f"<title>{escape(label)}</title>"
        f'<clipPath id="r"><rect width="{width}" height="{HEIGHT}" rx="3"/></clipPath>'
        f'<g clip-path="url(#r)">{rects}</g>'
        f'<g fill="#fff" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11"'
        f"{direction}>{texts}</g></svg>"
    )


# --- Endpoint ----------------------------------------------------------------------------------


def headers(etag: str) -> dict[str, str]:
    return {
        "Cache-Control": f"public, max-age={MAX_AGE}, stale-while-revalidate={STALE}",
        "ETag": etag,
        "Access-Control-Allow-Origin": "*",
        "Cross-Origin-Resource-Policy": "cross-origin",  # shown by pages on any origin
        # Opened directly, an SVG is a document: it may run nothing and load nothing.
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    }


def _no_petition(request: Request) -> Response:
    return Response("not found", 404, {"Cache-Control": "no-store"}, media_type="text/plain")


@petition_endpoint(_no_petition)
async def badge(request: Request, services: Services, entry: Entry) -> Response:
    registry = services.registry
    # Only `?lang=`: a badge is one public, cached image per URL, not negotiated per reader.
    lang = request.query_params.get("lang", "en")
    lang = lang if lang in i18n.LANGUAGES else "en"
    body = render(
        registry.count(entry), registry.goal(entry), lang=lang, is_open=entry.is_open
    ).encode()
    etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers(etag))
    return Response(body, headers=headers(etag), media_type="image/svg+xml")


routes = [Route("/badge/{slug}.svg", badge, methods=["GET", "HEAD"])]
