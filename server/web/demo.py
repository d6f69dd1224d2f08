"""The demo's partner page: what a newcomer sees at `/` after `petition-widget demo`.

It serves `examples/partner-site.html`, a realistic partner NGO page, with its snippets pointed
at this server, so the widget is embedded exactly as partners embed it. The browser tests serve
the same page from another origin, through `partner_page`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from server.web.bundle import EXAMPLES_DIR

EXAMPLE_ORIGIN = "http://127.0.0.1:8000"  # the server the example page's snippets name


def partner_page(base_url: str) -> str:
    """The example partner page with its snippets pointed at `base_url`."""
    html = (EXAMPLES_DIR / "partner-site.html").read_text(encoding="utf-8")
    return html.replace(EXAMPLE_ORIGIN, base_url.rstrip("/"))


async def partner_site(request: Request) -> HTMLResponse:
    return HTMLResponse(partner_page(request.app.state.services.settings.base_url))


routes = [Route("/", partner_site, methods=["GET", "HEAD"])]
