"""The pages that the links in mails open: confirming a signature and withdrawing one.

`GET /confirm/{token}` shows what is about to be confirmed (the signer's name and the boxes
they ticked) and a button; only `POST`, from a person's press of that button, confirms. Mail
scanners (Safe Links, Proofpoint) open every link in a mail, and some run the page's scripts:
the page has none, submits nothing by itself, and a GET changes nothing. `/withdraw/{token}`
works the same way. Repeating a confirmation or a withdrawal shows the same success; a
malformed or unknown link gets a 404 page, an expired one a 410 page that offers to sign again.
The token in the path is the only secret, so the pages send no referrer and are never cached.
Whether a link has expired is asked of the services' clock, which dates the links as they are
written (`wiring`), so a test moves time instead of waiting a week.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from server.domain import i18n, links, sealing
from server.domain.petitions import Entry
from server.store import confirmations
from server.store.confirmations import LinkTarget
from server.web import client_address
from server.web.responses import templates
from server.web.services import Services, services_of

PAGES = Path(__file__).parent / "templates" / "pages"


@functools.cache
def _files() -> tuple[Any, str, str]:
    css = (PAGES / "link.css").read_text(encoding="utf-8").strip()
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    csp = (
        f"default-src 'none'; style-src 'sha256-{digest}'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    )
    return templates().get_template("link.html"), css, csp


def _page(
    t: i18n.Catalog,
    status: int,
    heading: str,
    *,
    petition_title: str = "",
    paragraphs: tuple[str, ...] = (),
    choices: list[str] | None = None,
    button: str = "",
    after: tuple[str, ...] = (),
    link: tuple[str, str] | None = None,
    continue_url: str = "",
) -> Response:
    template, css, csp = _files()
    html = template.render(
        t=t, heading=heading, petition_title=petition_title, paragraphs=paragraphs,
        choices=choices, button=button, after=after, link=link, css=css,
        continue_url=continue_url,
    )  # fmt: skip
    headers = {
        "Content-Security-Policy": csp,
        "Referrer-Policy": "no-referrer",  # the path holds the link's secret
        "Cache-Control": "no-store",
        "X-Robots-Tag": "noindex",
    }
    return HTMLResponse(html, status, headers)


def _language(request: Request, entry: Entry | None, preferred: str = "") -> i18n.Catalog:
    if entry is not None and preferred in entry.petition.languages:
        return i18n.catalog(preferred)
    available = entry.petition.languages if entry else i18n.LANGUAGES
    default = entry.petition.lang if entry else i18n.DEFAULT_LANGUAGE
    accept = request.headers.get("accept-language", "")
    return i18n.catalog(i18n.choose_language(None, accept, available, default))


def _entry(services: Services, petition_id: int) -> Entry | None:
    return next((e for e in services.registry.entries.values() if e.id == petition_id), None)


def _days(services: Services) -> int:
    """Whole days, rounded up as the mail rounds them: "deleted within N days" stays true."""
    return max(1, -(-services.settings.confirm_lifetime // 86_400))


def _now(services: Services) -> int:
    """The server's clock, the one its links are dated by (a test may drive it)."""
    return int(services.clock.now())


def _unknown(request: Request) -> Response:
    t = _language(request, None)
    return _page(t, 404, t("link_unknown_title"), paragraphs=(t("link_unknown_text"),))


def _expired(request: Request, services: Services, entry: Entry | None) -> Response:
    t = _language(request, entry)
    again = (t("sign_again"), f"/widget/{entry.slug}") if entry is not None else None
    text = t("link_expired_text", days=_days(services))
    return _page(t, 410, t("link_expired_title"), paragraphs=(text,), link=again)


def _title(entry: Entry | None, lang: str) -> str:
    return entry.petition.in_language(lang).title if entry is not None else ""


async def _target(request: Request) -> tuple[Services, str, LinkTarget] | Response:
    services = services_of(request)
    digest = links.digest(request.path_params["token"])
    if digest is None:
        return _unknown(request)
    found = await confirmations.find(services.storage, digest, _now(services))
    if found is None:
        return _unknown(request)
    return services, digest, found


def _limited(request: Request, services: Services) -> Response | None:
    """Posts are limited per client address like signatures: each one is a write."""
    client = client_address.client_text(request.scope, services.settings.trusted_proxies)
    wait = services.client_limiter.hit(client)
    if not wait:
        return None
    t = _language(request, None)
    response = _page(t, 429, t("error_rate_limited"))
    response.headers["Retry-After"] = str(wait)
    return response


# --- Confirm -------------------------------------------------------------------------------------


async def confirm_page(request: Request) -> Response:
    found = await _target(request)
    if isinstance(found, Response):
        return found
    services, _, target = found
    if target.kind != links.CONFIRM:
        return _unknown(request)
    entry = _entry(services, target.petition_id)
    if target.found == "counted":
        return _confirmed(request, entry)
    if target.expired:
        return _expired(request, services, entry)
    if target.found == "gone":
        return _unknown(request)
    t = _language(request, entry, target.lang)
    name = target.name
    if target.name_box is not None:  # sealed: only the token in the signer's mail opens it
        name = sealing.open_name_box(target.name_box, request.path_params["token"]) or ""
    choices = []
    # Before confirming, the signer sees that their name will be delivered, if they chose so.
    named: tuple[str, ...] = ()
    if entry is not None and target.consent_name_to_target:
        target_name = entry.petition.in_language(t.lang).target
        named = (t("confirm_name_to_target", target=target_name),)
    if entry is not None:
        organiser = entry.petition.in_language(t.lang).organiser
        if target.consent_organiser and organiser:
            choices.append(organiser)
        partner = next((p for p in entry.partners.values() if p.id == target.partner_id), None)
        if target.consent_partner and partner is not None:
            choices.append(partner.name)
    return _page(
        t,
        200,
        t("confirm_title"),
        petition_title=_title(entry, t.lang),
        paragraphs=(t("confirm_intro", title=_title(entry, t.lang)),
                    t("confirm_name", name=name), *named),
        choices=choices,
        button=t("confirm_button"),
        after=(t("confirm_not_you", days=_days(services)),),
    )  # fmt: skip


async def confirm(request: Request) -> Response:
    found = await _target(request)
    if isinstance(found, Response):
        return found
    services, digest, target = found
    if target.kind != links.CONFIRM:
        return _unknown(request)
    entry = _entry(services, target.petition_id)
    if target.found == "counted":
        return _confirmed(request, entry)
    if target.expired:
        return _expired(request, services, entry)
    if target.found == "gone":  # withdrawn before it was confirmed: as the GET says
        return _unknown(request)
    limited = _limited(request, services)
    if limited is not None:
        return limited
    change = await confirmations.confirm(services.storage, digest, _now(services))
    if change is None:
        return _expired(request, services, entry)
    if change.count is not None:
        services.registry.note_count(change.petition_id, change.count)
    return _confirmed(request, entry, target.lang)


def _confirmed(request: Request, entry: Entry | None, lang: str = "") -> Response:
    t = _language(request, entry, lang)
    title = _title(entry, t.lang)
    # The petition's `[after_sign] url`, as a "none" petition's thank-you offers it.
    after_sign = entry.petition.after_sign_url if entry is not None else ""
    return _page(
        t, 200, t("confirmed_title"), petition_title=title,
        paragraphs=(t("confirmed_text", title=title),), continue_url=after_sign,
    )  # fmt: skip


# --- Withdraw ------------------------------------------------------------------------------------


async def withdraw_page(request: Request) -> Response:
    found = await _target(request)
    if isinstance(found, Response):
        return found
    services, _, target = found
    if target.kind != links.WITHDRAW:
        return _unknown(request)
    # The same page whether the submission still counts, waits, or is gone: a repeat signer's
    # link, which removes nothing, must look like any other.
    entry = _entry(services, target.petition_id)
    t = _language(request, entry, target.lang)
    title = _title(entry, t.lang)
    return _page(
        t, 200, t("withdraw_title"), petition_title=title,
        paragraphs=(t("withdraw_intro", title=title),), button=t("withdraw_button"),
    )  # fmt: skip


async def withdraw(request: Request) -> Response:
    found = await _target(request)
    if isinstance(found, Response):
        return found
    services, digest, target = found
    if target.kind != links.WITHDRAW:
        return _unknown(request)
    entry = _entry(services, target.petition_id)
    # Every withdrawal takes the same steps, whether its link names a signature or not (a repeat
    # signer's names none): the same limit, the same write, the same time.
    limited = _limited(request, services)
    if limited is not None:
        return limited
    change = await confirmations.withdraw(services.storage, digest)
    if change is not None and change.count is not None:
        services.registry.lower_count(change.petition_id, change.count)
    t = _language(request, entry, target.lang)
    title = _title(entry, t.lang)
    return _page(
        t, 200, t("withdrawn_title"), petition_title=title,
        paragraphs=(t("withdrawn_text", title=title),),
    )  # fmt: skip


routes = [
    Route("/confirm/{token}", confirm_page, methods=["GET", "HEAD"]),
    Route("/confirm/{token}", confirm, methods=["POST"]),
    Route("/withdraw/{token}", withdraw_page, methods=["GET", "HEAD"]),
    Route("/withdraw/{token}", withdraw, methods=["POST"]),
]
