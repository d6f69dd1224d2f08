"""The demo's pages: the partner page a newcomer sees at `/` after `petition-widget demo`, and
`/demo/mail`, the mails the demo has sent.

The partner page serves `examples/partner-site.html`, a realistic partner NGO page, with its
snippets pointed at this server, so the widget is embedded exactly as partners embed it. The
browser tests serve the same page from another origin, through `partner_page`.

The mail page lists what the demo's mail catcher (`web/mailcatcher.py`) caught, newest first,
with the links of each mail as anchors, so the whole confirmation path can be followed without
a mail account. Those links confirm and withdraw signatures, and the page shows addresses, so
it answers only to this machine (a loopback client), like the catcher itself, even when the
demo listens on another address. These routes exist only in the demo (`settings.demo`).
"""

from __future__ import annotations

import base64
import hashlib
import html
import ipaddress
import re

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from server.web import mailcatcher
from server.web.bundle import EXAMPLES_DIR

EXAMPLE_ORIGIN = "http://127.0.0.1:8000"  # the server the example page's snippets name
MAIL_PATH = "/demo/mail"

_CSS = (
    "body{font:16px/1.5 system-ui,sans-serif;color:#1d1b2a;max-width:760px;margin:2rem auto;"
    "padding:0 1rem}article{border-top:1px solid #ddd;padding:1rem 0}"
    "dl{display:grid;grid-template-columns:auto 1fr;gap:0 1rem;margin:0 0 .75rem}"
    "dt{color:#5a5766}dd{margin:0}pre{white-space:pre-wrap;word-break:break-word;"
    "background:#f5f3f8;padding:.75rem;border-radius:6px;font-size:14px}"
    "p.note{color:#5a5766}"
)
_CSS_DIGEST = base64.b64encode(hashlib.sha256(_CSS.encode()).digest()).decode()
_CSP = (
    f"default-src 'none'; style-src 'sha256-{_CSS_DIGEST}'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
_LINK = re.compile(r"https?://[^\s<>\"']+")


def partner_page(base_url: str) -> str:
    """The example partner page with its snippets pointed at `base_url`."""
    html_text = (EXAMPLES_DIR / "partner-site.html").read_text(encoding="utf-8")
    return html_text.replace(EXAMPLE_ORIGIN, base_url.rstrip("/"))


async def partner_site(request: Request) -> HTMLResponse:
    return HTMLResponse(partner_page(request.app.state.services.settings.base_url))


def mail_page(mails: list[mailcatcher.CaughtMail]) -> str:
    """The page listing `mails`: every value escaped, every link in a text an anchor."""
    items = []
    for caught in mails:
        items.append(
            "<article><dl>"
            f"<dt>To</dt><dd>{html.escape(caught.to)}</dd>"
            f"<dt>Subject</dt><dd>{html.escape(caught.subject)}</dd>"
            f"<dt>Date</dt><dd>{html.escape(caught.date)}</dd>"
            f"</dl><pre>{_linked(caught.text)}</pre></article>"
        )
    listing = "\n".join(items) or (
        '<p class="note">No mail yet. Sign the petition on the <a href="/">partner page</a>, '
        "then reload this page.</p>"
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="robots" content="noindex"><title>Demo mails</title><style>{_CSS}</style>'
        "</head><body>\n<h1>Mails the demo sent</h1>\n"
        '<p class="note">The demo sends its mails to a mail catcher on this machine: none leaves '
        f"it. Newest first; the last {mailcatcher.MAX_KEPT} are kept in memory until the demo "
        'stops. Back to the <a href="/">partner page</a>.</p>\n'
        f"{listing}\n</body></html>\n"
    )


async def demo_mail(request: Request) -> Response:
    headers = {
        "Content-Security-Policy": _CSP,
        "Referrer-Policy": "no-referrer",  # the links hold their secrets in the path
        "Cache-Control": "no-store",
        "X-Robots-Tag": "noindex",
    }
    if not _from_this_machine(request):
        return Response(
            "The demo's mails are shown only on the machine that runs it.\n",
            403,
            headers,
            media_type="text/plain",
        )
    return HTMLResponse(mail_page(mailcatcher.MAILBOX.mails()), headers=headers)


def _linked(text: str) -> str:
    out, end = [], 0
    for match in _LINK.finditer(text):
        url = html.escape(match.group())
        out += [html.escape(text[end : match.start()]), f'<a href="{url}">{url}</a>']
        end = match.end()
    out.append(html.escape(text[end:]))
    return "".join(out)


def _from_this_machine(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


routes = [
    Route("/", partner_site, methods=["GET", "HEAD"]),
    Route(MAIL_PATH, demo_mail, methods=["GET", "HEAD"]),
]
