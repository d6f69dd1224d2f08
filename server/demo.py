"""The demo's partner page: what a newcomer sees at `/` after `petition-widget demo`.

It serves `examples/partner-site.html`, a realistic partner NGO page, with its snippet pointed
at this server, so the widget is embedded exactly as partners embed it.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from server.bundle import EXAMPLES_DIR

EXAMPLE_ORIGIN = "http://127.0.0.1:8000"  # the server the example page's snippet names


async def partner_page(request: Request) -> HTMLResponse:
    base_url = request.app.state.services.settings.base_url
    html = (EXAMPLES_DIR / "partner-site.html").read_text(encoding="utf-8")
    return HTMLResponse(html.replace(EXAMPLE_ORIGIN, base_url))


routes = [Route("/", partner_page, methods=["GET", "HEAD"])]
