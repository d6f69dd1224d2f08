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

# Verdana 11px advance widths (the font shields.io badges use); anything else counts as wide.
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

# Phrases per language: the count, then the goal. Russian avoids a noun after the number, so
# no plural form is needed ("Подписали: 12 345 из 50 000").
_PHRASES = {
    "en": ("{count} signed", "of {goal}", "closed"),
    "ru": ("Подписали: {count}", "из {goal}", "закрыта"),
}


def text_width(text: str) -> float:
    return sum(_WIDTHS.get(c, _DEFAULT_WIDTH) for c in text)


def phrases(count: int, goal: int, lang: str, is_open: bool) -> tuple[str, str]:
    """The badge's two halves in `lang` (English when it has none)."""
    t = i18n.catalog(lang if lang in _PHRASES else "en")
    left, right, closed = _PHRASES.get(lang, _PHRASES["en"])
    right = right.format(goal=t.number(goal))
    if not is_open:
        right += f" · {closed}"
    return left.format(count=t.number(count)), right


def render(count: int, goal: int, *, lang: str = "en", is_open: bool = True) -> str:
    """The badge as a standalone SVG document."""
    left, right = phrases(count, goal, lang, is_open)
    left_width = round(text_width(left) + 2 * PADDING)
    right_width = round(text_width(right) + 2 * PADDING)
    width = left_width + right_width
    label = f"{left} {right}"
    colour = OPEN_COLOUR if is_open else CLOSED_COLOUR

    def text(x: float, value: str, length: float) -> str:
        # A faint shadow under each text, as badges usually have, then the text itself.
        common = f'x="{x:.1f}" textLength="{length:.1f}" lengthAdjust="spacingAndGlyphs"'
        return (
            f'<text {common} y="15" fill="#010101" fill-opacity=".3">{escape(value)}</text>'
            f'<text {common} y="14">{escape(value)}</text>'
        )

    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{HEIGHT}" '
        f'viewBox="0 0 {width} {HEIGHT}" role="img" aria-label="{escape(label)}">'
        f"<title>{escape(label)}</title>"
        f'<clipPath id="r"><rect width="{width}" height="{HEIGHT}" rx="3"/></clipPath>'
        f'<g clip-path="url(#r)">'
        f'<rect width="{left_width}" height="{HEIGHT}" fill="{colour}"/>'
        f'<rect x="{left_width}" width="{right_width}" height="{HEIGHT}" fill="{REST_COLOUR}"/>'
        f"</g>"
        f'<g fill="#fff" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">'
        f"{text(PADDING, left, text_width(left))}"
        f"{text(left_width + PADDING, right, text_width(right))}"
        f"</g></svg>"
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
    lang = request.query_params.get("lang", "en")
    lang = lang if lang in i18n.LANGUAGES else "en"
    body = render(registry.count(entry), entry.goal, lang=lang, is_open=entry.is_open).encode()
    etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers(etag))
    return Response(body, headers=headers(etag), media_type="image/svg+xml")


routes = [Route("/badge/{slug}.svg", badge, methods=["GET", "HEAD"])]
