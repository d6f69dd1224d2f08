"""The dashboard at `/admin`: owners see and run their petitions, partners see what their embed
brought in, both export signers. Thin endpoints over `access`, `sessions`, `storage`, `charts`
and `export`; the pages are Jinja2 templates in `templates/admin/`.

Who may do what: an owner key opens one petition or all of them; a partner key opens only its
own partner's page on its own petition, whose export holds only signers who agreed to hear
from that partner. Anything else is 403. Browsers sign in once with a key and then carry a
session cookie (a random id, good while the database has its digest: `sessions`); scripts
may send `Authorization: Bearer <key>` on any GET instead (a wrong key there is a 401 that
does not say what was wrong). Every POST needs a session and its CSRF token, and is refused
when it comes from another site.

Pages are in the reader's language, chosen by the browser's `Accept-Language` among the
catalogs that have a `[dashboard]` table (`i18n.DASHBOARD_LANGUAGES`), with its dates and
numbers (CLDR, through Babel); English otherwise.

Pages are answered with a strict Content-Security-Policy (our own stylesheet and script only,
no inline code, no frames of us elsewhere), `no-store`, and no referrer to other sites. Numbers
come from the database on every request, so they are exact and a revoked key stops working at
once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import functools
import logging
import re
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from server.domain import access, breakdowns, charts, delivery_pdf, export, i18n, snippet, trending
from server.domain.access import Principal
from server.domain.delivery import csv_text as delivery_csv
from server.domain.partners import Partner
from server.domain.petitions import MAX_GOAL, THEMES, Entry
from server.domain.progress import Progress
from server.domain.validation import stored_email_key
from server.settings import Settings
from server.store import confirmations, delivery, outbox, totals, webhooks
from server.store.signatures import MAIL_TOPIC
from server.store.storage import Storage
from server.web import auth, spreadsheet, widget
from server.web.assets import IMMUTABLE, Asset, compressed
from server.web.payloads import PayloadError, decode_form, read_body
from server.web.responses import templates
from server.web.services import services_of
from server.web.sessions import Session, Sessions, cookie_name

logger = logging.getLogger("petition_widget.admin")

TEMPLATES = Path(__file__).parent / "templates" / "admin"
FORM_BYTES = 4096  # the largest dashboard form body accepted
HOURS_SHOWN = 48  # the per-hour chart covers the last two days
DAYS_MIN, DAYS_MAX = 14, 366  # the per-day chart covers the campaign, within these bounds
LATEST_SIGNERS = 20  # consenting signers listed on a partner's page (the export has them all)

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    # Not no-referrer: browsers then send `Origin: null` with our own form posts. same-origin
    # still sends nothing to other sites.
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
NOTICES = {  # ?done= and ?error= after a form post: catalog texts, never echoed input
    "opened": "notice_opened",
    "closed": "notice_closed",
    "goal": "notice_goal",
    "unchanged": "notice_unchanged",
    "goal-not-higher": "notice_goal_not_higher",
    "goal-too-high": "notice_goal_too_high",
    "redelivered": "notice_redelivered",
    "not-redelivered": "notice_not_redelivered",
    "goal-not-a-number": "notice_goal_not_a_number",
}
# A number typed into the dashboard: ASCII digits only. `str.isdigit()` also takes `²` and
# other digits that `int()` then refuses (a 500), or reads (`٣` is 3) where a typo is likelier.
_WHOLE_NUMBER = re.compile(r"[0-9]{1,12}")
# `code` and **bold** in a dashboard text: the only markup a translator writes.
_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")


@dataclasses.dataclass
class AdminState:
    """What the dashboard keeps per process: the session signer (the sign-in limit is shared:
    `Services.login_limiter`)."""

    sessions: Sessions

    @classmethod
    def build(cls, settings: Settings) -> AdminState:
        return cls(Sessions(settings.secret_keys))


@functools.cache
def _files() -> tuple[jinja2.Environment, dict[str, Asset]]:
    env = templates()
    assets = {
        a.name: a
        for a in (Asset.load(TEMPLATES / n, fingerprint=True) for n in ("admin.css", "admin.js"))
    }
    return env, assets


def _asset_url(suffix: str) -> str:
    _, assets = _files()
    return "/admin/assets/" + next(n for n in assets if n.endswith(suffix))


def state_of(request: Request) -> AdminState:
    state: AdminState = request.app.state.admin
    return state


# --- Who is asking -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Caller:
    principal: Principal
    session: Session | None  # None when the key came in an Authorization header


def _secure(request: Request) -> bool:
    return services_of(request).settings.secure_cookies or request.url.scheme == "https"


def _cookie(request: Request) -> str | None:
    return request.cookies.get(cookie_name(_secure(request)))


async def _session(request: Request) -> Session | None:
    """The session of the request's cookie, if the database has it (see `sessions`)."""
    return await state_of(request).sessions.resume(services_of(request).storage, _cookie(request))


async def _caller(request: Request) -> Caller | Response:
    """The caller, or the `401` for one we do not know: JSON for a bad `Authorization` header,
    else the sign-in page (no, forged, expired or revoked session)."""
    storage = services_of(request).storage
    header = request.headers.get("authorization")
    if header is not None:
        wait = auth.guesses_wait(request)
        if wait:
            return auth.too_many_guesses(wait)
        principal = await auth.authenticate(storage, access.bearer(header))
        if principal is None:
            auth.guessed_wrong(request)
            return unauthorized()
        return Caller(principal, None)
    session = await _session(request)
    principal = await auth.by_key_id(storage, session.key_id) if session else None
    if session is None or principal is None:
        return _to_login(request)
    return Caller(principal, session)


def unauthorized() -> Response:
    """The one answer to a missing, malformed, unknown, wrong or revoked key."""
    return Response(
        '{"error":"unauthorized","message":"A valid access key is needed."}',
        401,
        {"WWW-Authenticate": 'Bearer realm="petition-widget"', "Cache-Control": "no-store"},
        media_type="application/json",
    )


def _to_login(request: Request) -> Response:
    """The sign-in page in place of the page asked for, answered `401` (a script fetching an
    export without a key gets a 401, not a page to follow); signing in returns to that page."""
    back = request.url.path if request.method == "GET" else "/admin"
    response = page(request, "login.html", None, 401, next=back)
    response.headers["WWW-Authenticate"] = 'Bearer realm="petition-widget"'
    name = cookie_name(_secure(request))
    if name in request.cookies:  # forged, expired or revoked: forget it
        response.delete_cookie(name, path="/", secure=_secure(request), httponly=True,
                               samesite="strict")  # fmt: skip
    return response


def _same_site(request: Request) -> bool:
    """Whether a POST comes from our own pages. Browsers say where a request comes from
    (`Sec-Fetch-Site`, `Origin`); a request that says nothing is not a browser's cross-site
    form, and still needs its CSRF token."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site not in (None, "same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None or (origin == "null" and fetch_site == "same-origin"):
        return True
    own = {
        _origin(services_of(request).settings.base_url),
        f"{request.url.scheme}://{request.headers.get('host', '')}",
    }
    return origin in own


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def _form(request: Request) -> dict[str, Any] | None:
    """A small urlencoded form, or None for anything else."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != (
        "application/x-www-form-urlencoded"
    ):
        return None
    try:
        body = await read_body(request, FORM_BYTES)
        return decode_form(body.decode("utf-8"))
    except (PayloadError, UnicodeDecodeError):
        return None


async def _poster(request: Request) -> tuple[Caller, dict[str, Any]] | Response:
    """The caller and form of a state-changing request: a session, from our own site, with the
    session's CSRF token. Otherwise back to sign-in (no valid session) or 403."""
    session = await _session(request)
    principal = None
    if session is not None:
        principal = await auth.by_key_id(services_of(request).storage, session.key_id)
    if session is None or principal is None:
        return _to_login(request)
    form = await _form(request)
    if not _same_site(request) or form is None or not session.csrf_ok(form.get("csrf")):
        return forbidden(request, "forbidden_csrf")
    return Caller(principal, session), form


# --- Pages ---------------------------------------------------------------------------------------


def language(request: Request) -> i18n.Catalog:
    """The reader's language: their browser's first that the dashboard speaks, else English."""
    return i18n.catalog(
        i18n.choose_language(
            None,
            request.headers.get("accept-language", ""),
            i18n.DASHBOARD_LANGUAGES,
            i18n.DEFAULT_LANGUAGE,
        )
    )


def marked(t: i18n.Catalog, key: str, **values: Any) -> Markup:
    """A dashboard text with its `code` and **bold** as markup; everything else, the values
    included, escaped."""
    text = str(escape(t.admin(key, **values)))
    text = _BOLD.sub(r"<strong>\1</strong>", _CODE.sub(r"<code>\1</code>", text))
    return Markup(text)  # noqa: S704 - escaped above; only the two patterns add tags


def page(
    request: Request, template: str, caller: Caller | None, status: int = 200, **context: Any
) -> Response:
    env, _ = _files()
    t = language(request)
    error = request.query_params.get("error", "")
    notice_key = NOTICES.get(request.query_params.get("done", "")) or NOTICES.get(error)
    html = env.get_template(template).render(
        css_url=_asset_url(".css"),
        js_url=_asset_url(".js"),
        caller=caller,
        home=_home(caller.principal) if caller else "/admin",
        csrf=caller.session.csrf if caller and caller.session else "",
        notice=t.admin(notice_key, max=MAX_GOAL) if notice_key else "",
        is_error="error" in request.query_params,
        t=t,
        a=t.admin,
        am=functools.partial(marked, t),
        **context,
    )
    body = html.encode()
    headers = {**PAGE_HEADERS, "Content-Language": t.lang}  # no-store: nothing to vary
    return compressed(request, body, "text/html; charset=utf-8", headers, None, status)


def forbidden(request: Request, message: str = "", caller: Caller | None = None) -> Response:
    """The 403 page; `message` is a dashboard text's key."""
    return page(request, "message.html", caller, 403, heading="forbidden_heading",
                message=message or "forbidden")  # fmt: skip


def not_found(request: Request, caller: Caller | None = None) -> Response:
    return page(request, "message.html", caller, 404, heading="not_found_heading",
                message="not_found")  # fmt: skip


def signed_in(
    handler: Callable[[Request, Caller], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """A dashboard page for whoever is signed in (or sends a key): the handler gets the caller;
    anyone else gets the sign-in form (401) or the answer `_caller` gives."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        caller = await _caller(request)
        if isinstance(caller, Response):
            return caller
        return await handler(request, caller)

    return endpoint


async def login_page(request: Request) -> Response:
    has_session = state_of(request).sessions.session_id(_cookie(request)) is not None
    caller = await _caller(request) if has_session else None
    if isinstance(caller, Caller):
        return RedirectResponse(_home(caller.principal), 303)
    return page(request, "login.html", None, next=_next(request.query_params.get("next")))


def _next(value: object) -> str:
    """Where to go after signing in: only a path of the dashboard itself."""
    if (
        isinstance(value, str)
        and value.startswith("/admin/")
        and "//" not in value
        and "/." not in value
        and all(c.isascii() and (c.isalnum() or c in "/-_.") for c in value)
    ):
        return value
    return "/admin"


async def login(request: Request) -> Response:
    services = services_of(request)
    wait = auth.guesses_wait(request)
    if wait:  # the key is not even looked at
        response = page(request, "login.html", None, 429, next="/admin",
                        error="login_too_many")  # fmt: skip
        response.headers["Retry-After"] = str(wait)
        return response
    form = await _form(request)
    if not _same_site(request) or form is None:
        return forbidden(request, "login_elsewhere")
    principal = await auth.authenticate(services.storage, form.get("key"))
    if principal is None:
        auth.guessed_wrong(request)
        logger.info("refused a dashboard sign-in")
        return page(request, "login.html", None, 401, next=_next(form.get("next")),
                    error="login_wrong")  # fmt: skip
    if form.get("step") == "link":
        # From a link's fragment (admin.js): show whose dashboard this key opens, and sign in
        # only on a click. A link made by someone else must not sign anyone in by itself.
        return page(request, "login_confirm.html", None, principal=principal,
                    key=form.get("key"), next=_next(form.get("next")))  # fmt: skip
    logger.info("dashboard sign-in with %s key %s", principal.role, principal.key_id)
    target = _next(form.get("next"))
    if target == "/admin":
        target = _home(principal)
    sessions = state_of(request).sessions
    previous = await _session(request)
    if previous is not None:  # signing in again replaces this browser's session
        await sessions.end(services.storage, previous)
    cookie = await sessions.start(services.storage, principal.key_id)
    response = RedirectResponse(target, 303, headers={"Cache-Control": "no-store"})
    secure = _secure(request)
    response.set_cookie(
        cookie_name(secure),
        cookie,
        max_age=sessions.max_age,
        path="/",
        secure=secure,
        httponly=True,
        samesite="strict",
    )
    return response


async def logout(request: Request) -> Response:
    posted = await _poster(request)
    if isinstance(posted, Response):
        return posted
    caller, _ = posted
    assert caller.session is not None  # a poster always has one
    await state_of(request).sessions.end(services_of(request).storage, caller.session)
    response = RedirectResponse("/admin/login", 303)
    response.delete_cookie(cookie_name(_secure(request)), path="/", secure=_secure(request),
                           httponly=True, samesite="strict")  # fmt: skip
    return response


def _home(principal: Principal) -> str:
    """Where a key's dashboard starts: the overview for an owner, its own page for a partner."""
    return "/admin" if principal.is_owner else _partner_url(principal)


def _partner_url(principal: Principal) -> str:
    return f"/admin/petitions/{principal.petition_slug}/partners/{principal.partner_code}"


@signed_in
async def overview(request: Request, caller: Caller) -> Response:
    if not caller.principal.is_owner:
        return forbidden(request, "forbidden_overview", caller)
    services = services_of(request)
    now = int(time.time())
    rows = []
    async with services.storage.session():
        totals = await services.storage.totals()
        for entry in sorted(services.registry.entries.values(), key=lambda e: e.slug):
            if not caller.principal.may_see(entry.id):
                continue
            count = totals.get(entry.id, 0)
            goal = services.registry.goal(entry)  # the shown goal, as the public sees it
            rows.append(
                {
                    "entry": entry,
                    "title": entry.petition.in_language(entry.petition.lang).title,
                    "count": count,
                    "goal": goal,
                    "progress": Progress(count, goal).filled,
                    "share": Progress(count, goal).share,
                    "last_day": await services.storage.signatures_between(
                        entry.id, now - charts.DAY, now + 1
                    ),
                }
            )
    return page(request, "overview.html", caller, petitions=rows)


async def _entry(request: Request) -> Entry | None:
    return services_of(request).registry.get(request.path_params["slug"])


async def _managed(request: Request, caller: Caller) -> Entry | Response:
    """The petition in the path, once the caller may manage it; else the page to answer."""
    entry = await _entry(request)
    if entry is None:
        return not_found(request, caller)
    if not caller.principal.may_manage(entry.id):
        return forbidden(request, caller=caller)
    return entry


@signed_in
async def petition_page(request: Request, caller: Caller) -> Response:
    entry = await _managed(request, caller)
    if isinstance(entry, Response):
        return entry
    return await _petition_view(request, caller, entry)


async def _petition_view(
    request: Request, caller: Caller, entry: Entry, status: int = 200, error: str = ""
) -> Response:
    """The petition's page; with `error` (a key of `NOTICES`), its message by the goal's field
    and `status`: a form refused where it was typed."""
    storage = services_of(request).storage
    async with storage.session():
        numbers = await _numbers(
            storage, entry, None, language(request), services_of(request).registry.goal(entry)
        )
        partners = await storage.petition_partners(entry.id)
        by_partner = await storage.partner_totals(entry.id)
        activity = await storage.partner_activity(entry.id)
        unknown = await storage.unknown_partner_activity(entry.id)
        waiting = await confirmations.pending_count(storage, entry.id)
        mail = await outbox.counts(storage, MAIL_TOPIC)
        hooks = [
            (e, await webhooks.activity(storage, e.id))
            for e in await webhooks.endpoints(storage, entry.id)
        ]
        breakdown = await _breakdown(storage, entry.id, None, True, language(request))
    total = numbers["count"]
    table = []
    for p in partners:
        n = by_partner.get(p.id, 0)
        seen = activity.get(p.id)
        table.append(
            PartnerLine(
                partner=p,
                count=n,
                share=n / total if total else 0.0,
                last=seen.last_signature_at if seen else None,
                consenting=seen.consenting if seen else 0,
            )
        )
    table.sort(key=lambda line: (-line.count, line.partner.code))
    unknown_total = sum(u.signatures for u in unknown)
    direct = max(0, by_partner.get(None, 0) - unknown_total)
    return page(
        request,
        "petition.html",
        caller,
        entry=entry,
        zone=entry.petition.zone,  # the times shown (`when`) as the charts: the petition's
        title=entry.petition.in_language(entry.petition.lang).title,
        n=numbers,
        partners=table,
        direct={"count": direct, "share": direct / total if total else 0.0},
        unknown=[{"row": u, "share": u.signatures / total if total else 0.0} for u in unknown],
        generator=_generator(request, entry, partners),
        confirmation={"pending": waiting, "mail": mail}
        if entry.petition.needs_confirmation
        else None,
        max_goal=MAX_GOAL,
        base_url=services_of(request).settings.base_url,
        sealed=bool(services_of(request).settings.sealing_public_key),
        webhooks=hooks,
        status=status,
        goal_error=NOTICES.get(error, "") if error.startswith("goal-") else "",
        breakdown=breakdown,
    )


@dataclasses.dataclass(frozen=True)
class PartnerLine:
    """One row of the owner's per-partner table."""

    partner: Partner
    count: int
    share: float
    last: int | None
    consenting: int


@signed_in
async def partner_page(request: Request, caller: Caller) -> Response:
    found = await _partner(request, caller)
    if isinstance(found, Response):
        return found
    entry, partner = found
    storage = services_of(request).storage
    async with storage.session():
        numbers = await _numbers(
            storage, entry, partner.id, language(request), services_of(request).registry.goal(entry)
        )
        petition_total = sum((await storage.partner_totals(entry.id)).values())
        consenting = await storage.consenting_signers(partner.id)
        # Sealed, the server has no names to show: counts only, and the sealed export.
        sealed = bool(services_of(request).settings.sealing_public_key)
        latest = [] if sealed else await storage.latest_consenting(partner.id, LATEST_SIGNERS)
        # Only the owner sees a breakdown exactly; a partner sees small cells as "fewer".
        exact = caller.principal.is_owner
        breakdown = await _breakdown(storage, entry.id, partner.id, exact, language(request))
    return page(
        request,
        "partner.html",
        caller,
        entry=entry,
        zone=entry.petition.zone,  # the times shown (`when`) as the charts: the petition's
        partner=partner,
        title=entry.petition.in_language(entry.petition.lang).title,
        n=numbers,
        petition_total=petition_total,
        share=numbers["count"] / petition_total if petition_total else 0.0,
        consenting=consenting,
        latest=latest,
        sealed=sealed,
        breakdown=breakdown,
        generator=_generator(request, entry, [partner], fixed_partner=partner.code),
    )


async def _partner(request: Request, caller: Caller) -> tuple[Entry, Partner] | Response:
    """The petition and partner of a partner route, if this caller may see them."""
    entry = await _entry(request)
    code = request.path_params["code"]
    principal = caller.principal
    if not principal.is_owner and (
        entry is None or entry.id != principal.petition_id or code != principal.partner_code
    ):
        return forbidden(request, caller=caller)  # never tells a partner what else exists
    if entry is None:
        return not_found(request, caller)
    partner = await services_of(request).storage.partner(entry.id, code)
    if partner is None:
        return not_found(request, caller)
    if not principal.may_see_partner(entry.id, partner.id):
        return forbidden(request, caller=caller)
    return entry, partner


async def _numbers(
    storage: Storage, entry: Entry, partner_id: int | None, t: i18n.Catalog, goal: int
) -> dict[str, Any]:
    """Counts, the last-24-hours rate and the charts, for a petition or one partner, in the
    petition's time zone: per day, per hour, toward the goal, and (for the whole petition,
    when it has partners) partners compared over time. The store counts per UTC hour, the
    charts make local days of them (`charts.local_days`). `goal` is the shown one
    (`Registry.goal`: with `auto_goal`, the step the widget and the badge show), so the
    dashboard's progress is the public's."""
    now = int(time.time())
    zone = entry.petition.zone
    if partner_id is None:
        count = sum((await storage.partner_totals(entry.id)).values())
    else:
        count = (await storage.partner_totals(entry.id)).get(partner_id, 0)
    first, last = await storage.signature_span(entry.id, partner_id)
    day_start = now - (DAYS_MIN - 1) * charts.DAY
    if first is not None:
        day_start = max(min(first, day_start), now - (DAYS_MAX - 1) * charts.DAY)
    day_start = charts.day_bars({}, day_start, day_start, zone)[0].start  # its local midnight
    hour_start = (now - (HOURS_SHOWN - 1) * charts.HOUR) // charts.HOUR * charts.HOUR
    since = min(day_start, hour_start) // charts.HOUR * charts.HOUR
    hours = await storage.signature_buckets(entry.id, charts.HOUR, since, partner_id)
    days = charts.day_bars(charts.local_days(hours, zone), day_start, now, zone)
    last_day = await storage.signatures_between(entry.id, now - charts.DAY, now + 1, partner_id)
    day_before = await storage.signatures_between(
        entry.id, now - 2 * charts.DAY, now - charts.DAY, partner_id
    )
    zone_name = str(zone)
    numbers = {
        "count": count,
        "goal": goal,
        "progress": Progress(count, goal).filled,
        "share_of_goal": Progress(count, goal).share,
        "first": first,
        "last": last,
        "last_day": last_day,
        "day_before": day_before,
        "per_hour": last_day / 24,
        "per_day_chart": charts.bar_chart(
            days,
            charts.DAY,
            title=t.admin("chart_per_day", zone=zone_name),
            chart_id="per-day",
            t=t,
            zone=zone,
        ),
        "per_hour_chart": charts.bar_chart(
            charts.bars(hours, hour_start, now, charts.HOUR),
            charts.HOUR,
            title=t.admin("chart_per_hour", hours=HOURS_SHOWN, zone=zone_name),
            chart_id="per-hour",
            t=t,
            zone=zone,
        ),
        "cumulative_chart": charts.cumulative_chart(
            days,
            count - sum(b.count for b in days),
            goal,
            title=t.admin("chart_cumulative", goal=t.number(goal), zone=zone_name),
            chart_id="cumulative",
            t=t,
            zone=zone,
        ),
        "partners_chart": None,
    }
    if partner_id is None:
        numbers["partners_chart"] = await _partners_chart(storage, entry, day_start, now, t)
    return numbers


async def _partners_chart(
    storage: Storage, entry: Entry, day_start: int, now: int, t: i18n.Catalog
) -> Any:
    """The busiest `charts.MAX_LINES` partners over the days shown, the others as one line,
    and the signatures without a known partner; None while the petition has no partner."""
    partners = await storage.petition_partners(entry.id)
    if not partners:
        return None
    zone = entry.petition.zone
    by_partner = await storage.partner_buckets(entry.id, charts.HOUR, day_start)

    def days_of(hours: dict[int, int]) -> list[charts.Bar]:
        return charts.day_bars(charts.local_days(hours, zone), day_start, now, zone)

    ranked = sorted(partners, key=lambda p: (-sum(by_partner.get(p.id, {}).values()), p.code))
    lines = [(p.name, days_of(by_partner.get(p.id, {}))) for p in ranked[: charts.MAX_LINES]]
    others: dict[int, int] = {}
    for p in ranked[charts.MAX_LINES :]:
        for bucket, n in by_partner.get(p.id, {}).items():
            others[bucket] = others.get(bucket, 0) + n
    if others:
        lines.append((t.admin("chart_other_partners"), days_of(others)))
    if by_partner.get(None):
        lines.append((t.admin("chart_no_partner"), days_of(by_partner[None])))
    return charts.lines_chart(
        lines,
        title=t.admin("chart_partners", zone=str(zone)),
        chart_id="partners-over-time",
        t=t,
        zone=zone,
    )


async def _breakdown(
    storage: Storage, petition_id: int, partner_id: int | None, exact: bool, t: i18n.Catalog
) -> dict[str, Any]:
    """The tables by country and language (of one partner's signers, with `partner_id`): rows of
    (label, count or None for a hidden cell), in the order of the API's cells."""
    countries = breakdowns.cells(
        await totals.by_country(storage, petition_id, partner_id), key="country", exact=exact
    )
    languages = breakdowns.cells(
        await totals.by_language(storage, petition_id, partner_id), key="lang", exact=exact
    )
    return {
        "countries": [
            (t.country(c["country"]) if c["country"] else t.admin("breakdown_no_country"),
             c["signatures"])
            for c in countries
        ],
        "languages": [
            (t.locale.languages.get(c["lang"]) or c["lang"], c["signatures"]) for c in languages
        ],
        "exact": exact,
        "minimum": breakdowns.MINIMUM,
    }  # fmt: skip


def _generator(
    request: Request, entry: Entry, partners: list[Partner], fixed_partner: str = ""
) -> dict[str, Any]:
    """The snippet generator's state from the query (it also works without JavaScript). A named
    configuration of the petition file (`[[embed.configs]]`, chosen in its own small form:
    `?config=NAME`) gives every option at once."""
    params: Mapping[str, str] = request.query_params
    by_code = {p.code: p for p in partners}
    codes = list(by_code)
    configs = [
        c for c in entry.petition.embed_configs if not fixed_partner or c.partner == fixed_partner
    ]
    config = next((c for c in configs if c.name == params.get("config")), None)
    if config is not None:
        params = {
            "partner": config.partner, "lang": config.lang, "accent": config.accent,
            "theme": config.theme, "layout": "compact" if config.compact else "",
        }  # fmt: skip
    partner = fixed_partner or params.get("partner", "")
    partner = partner if partner in codes else ""
    lang = params.get("lang", "")
    lang = lang if lang in entry.petition.languages else ""
    partner, lang, accent = snippet.clean(partner, lang, params.get("accent", ""))
    theme = params.get("theme", "light")
    theme = theme if theme in THEMES else "light"
    compact = params.get("layout") == "compact"
    transparent = params.get("background") == "transparent"
    look = snippet.looks(theme, "compact" if compact else "", "transparent" if transparent else "")
    layout = "compact" if compact else "full"
    base_url = services_of(request).settings.base_url
    langs = widget.interface_languages(entry)
    # The heights the script needs to build the same snippet for any partner, language and
    # layout: a registered partner's snippet reserves its consent box too ("" for none).
    spaces = {
        code: {
            lang_code: {
                name: dataclasses.astuple(
                    widget.snippet_space(entry, lang_code, name, by_code.get(code))
                )
                for name in ("full", "compact")
            }
            for lang_code in ("", *langs)
        }
        for code in ("", *codes)
    }
    return {
        "partner": partner,
        "lang": lang,
        "accent": accent,
        "theme": theme,
        "compact": compact,
        "transparent": transparent,
        "config": config.name if config else "",
        "configs": configs,
        "codes": codes,
        "fixed_partner": fixed_partner,
        "languages": entry.petition.languages,
        "themes": THEMES,
        "spaces": spaces,
        "snippet": snippet.embed(
            base_url,
            entry.slug,
            partner,
            lang,
            accent,
            look=look,
            space=widget.snippet_space(entry, lang, layout, by_code.get(partner)),
        ),
        "preview": snippet.widget_path(entry.slug, partner, lang, accent, look=look, preview=True),
        "base_url": base_url,
        "noscript_height": snippet.NOSCRIPT_HEIGHT,  # for admin.js, which builds the same text
    }


# --- Changes -------------------------------------------------------------------------------------


async def _change(request: Request) -> tuple[Caller, dict[str, Any], Entry] | Response:
    """The caller, form and petition of a change, once the caller may make it."""
    posted = await _poster(request)
    if isinstance(posted, Response):
        return posted
    caller, form = posted
    entry = await _managed(request, caller)
    if isinstance(entry, Response):
        return entry
    return caller, form, entry


async def change_status(request: Request) -> Response:
    change = await _change(request)
    if isinstance(change, Response):
        return change
    caller, form, entry = change
    status = form.get("status")
    if status not in ("open", "closed"):
        return _back(entry, error="unchanged")
    services = services_of(request)
    changed = await services.storage.set_petition_status(entry.id, status)
    if changed:
        logger.info("petition %s %s by key %s", entry.slug, status, caller.principal.key_id)
        await services.registry.refresh()  # this worker at once; the others within seconds
    if not changed:
        return _back(entry, done="unchanged")
    return _back(entry, done="opened" if status == "open" else "closed")


async def change_goal(request: Request) -> Response:
    change = await _change(request)
    if isinstance(change, Response):
        return change
    caller, form, entry = change
    raw = form.get("goal")
    if not isinstance(raw, str) or not _WHOLE_NUMBER.fullmatch(raw.strip()):
        # Refused where it was typed (400), the page shown again with the field's message.
        return await _petition_view(request, caller, entry, 400, "goal-not-a-number")
    goal = int(raw.strip())
    if goal > MAX_GOAL:
        return _back(entry, error="goal-too-high")
    if goal <= entry.goal:
        # Only up: a lowered goal would make the same count look like more progress. A wrong
        # goal is corrected in the petition's file (see docs/owners.md).
        return _back(entry, error="goal-not-higher")
    services = services_of(request)
    await services.storage.set_petition_goal(entry.id, goal)
    logger.info("petition %s goal raised to %d by key %s", entry.slug, goal,
                caller.principal.key_id)  # fmt: skip
    await services.registry.refresh()
    return _back(entry, done="goal")


async def redeliver(request: Request) -> Response:
    """The dashboard's button: a webhook event that failed for good is tried again now."""
    change = await _change(request)
    if isinstance(change, Response):
        return change
    caller, form, entry = change
    raw_endpoint, raw_row = request.path_params["endpoint"], form.get("event")
    # ASCII digits, and few enough for the database's integers (`_WHOLE_NUMBER`): `isdigit()`
    # took `²`, which `int()` then refused with a 500.
    if not (
        _WHOLE_NUMBER.fullmatch(raw_endpoint)
        and isinstance(raw_row, str)
        and _WHOLE_NUMBER.fullmatch(raw_row)
    ):
        return _back(entry, error="not-redelivered")
    storage = services_of(request).storage
    endpoint = await webhooks.endpoint(storage, int(raw_endpoint))
    if endpoint is None or endpoint.petition_id != entry.id:
        return _back(entry, error="not-redelivered")
    if not await webhooks.redeliver(storage, endpoint.id, int(raw_row), time.time()):
        return _back(entry, error="not-redelivered")
    logger.info("webhook %d: an event redelivered by key %s", endpoint.id,
                caller.principal.key_id)  # fmt: skip
    return _back(entry, done="redelivered")


def _back(entry: Entry, **outcome: str) -> Response:
    return RedirectResponse(
        f"/admin/petitions/{entry.slug}?{urllib.parse.urlencode(outcome)}#manage", 303
    )


# --- Exports -------------------------------------------------------------------------------------


#: Below this many signatures from one domain, a lookup says only "fewer": a small count next
#: to a domain (a company's, a university's) could point at a person.
DOMAIN_MINIMUM = 10


@signed_in
async def domain_lookup(request: Request, caller: Caller) -> Response:
    """How many signatures came from addresses at a domain the owner types: looked up by its
    keyed hash, so no list of domains exists to show, and no count under `DOMAIN_MINIMUM`."""
    entry = await _managed(request, caller)
    if isinstance(entry, Response):
        return entry
    typed = request.query_params.get("domain", "").strip().lower().lstrip("@")[:255]
    services = services_of(request)
    result = error = mark = None
    if typed:
        key = stored_email_key("someone@" + typed)
        domain = key.rpartition("@")[2] if key else None
        if domain is None or services.email_hasher is None:
            error = "domains_not_a_domain"  # a dashboard text's key
        else:
            domain_key = services.email_hasher.domain_key(domain)
            n = await services.storage.signatures_from_domain(entry.id, domain_key)
            result = (domain, n if n >= DOMAIN_MINIMUM else None)
            mark = trending.mark(domain_key)  # how the trending panel names it
    return page(
        request, "domains.html", caller, entry=entry, typed=typed, result=result, error=error,
        minimum=DOMAIN_MINIMUM, mark=mark,
        title=entry.petition.in_language(entry.petition.lang).title,
    )  # fmt: skip


#: Plain formats, answered 409 when signer data is sealed (the server cannot open it).
PLAIN_FORMATS = ("csv", "json", "xlsx")


@signed_in
async def export_signatures(request: Request, caller: Caller) -> Response:
    fmt = request.path_params["format"]
    sealing_key = services_of(request).settings.sealing_public_key
    if fmt not in export.FORMATS and fmt not in ("sealed", "xlsx"):
        return not_found(request, caller)
    partner: Partner | None = None
    columns: Sequence[str]
    if "code" in request.path_params:
        found = await _partner(request, caller)
        if isinstance(found, Response):
            return found
        entry, partner = found
        columns = export.PARTNER_COLUMNS
        name = f"{entry.slug}-{partner.code}-consenting-signers"
    else:
        managed = await _managed(request, caller)
        if isinstance(managed, Response):
            return managed
        entry = managed
        columns = export.OWNER_COLUMNS
        name = f"{entry.slug}-signatures"
    if sealing_key and partner is not None and not partner.public_key:
        # Sealed, and no key of its own: nothing is kept for this partner, in any format.
        return page(request, "message.html", caller, 409, heading="sealed_heading",
                    message="partner_sealed_no_key")  # fmt: skip
    if sealing_key and fmt in PLAIN_FORMATS:
        return page(request, "message.html", caller, 409, heading="sealed_heading",
                    message="sealed_export_only")  # fmt: skip
    if fmt == "sealed" and not sealing_key:
        return page(request, "message.html", caller, 409, heading="not_sealed_heading",
                    message="not_sealed")  # fmt: skip
    logger.info("export of %s (%s) by %s key %s", entry.slug, partner.code if partner else "all",
                caller.principal.role, caller.principal.key_id)  # fmt: skip
    rows = services_of(request).storage.export_rows(
        entry.id, partner.id if partner else None, partner_box=partner is not None
    )
    day = datetime.datetime.now(datetime.UTC).date().isoformat()
    if fmt == "sealed":
        header = {
            "petition": entry.slug,
            "partner": partner.code if partner else None,
            "columns": list(columns),
            # Whose secret key opens the boxes: the owner's, or this partner's.
            "public_key": partner.public_key if partner else sealing_key,
            "exported_at": export.iso(int(time.time())),
        }
        chunks = export.sealed_chunks(rows, header)
        media_type = "application/x-ndjson"
    elif fmt == "xlsx":
        chunks, media_type = spreadsheet.chunks(rows, columns), spreadsheet.MEDIA_TYPE
    else:
        media_type, produce = export.FORMATS[fmt]
        options: Mapping[str, bool] = {"bom": request.query_params.get("bom") == "1"}
        chunks = produce(rows, columns, **options) if fmt == "csv" else produce(rows, columns)
    return StreamingResponse(
        chunks,
        media_type=media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{name}-{day}.{fmt}"',
            "Cache-Control": "no-store",
        },
    )


#: The dashboard's delivery pack: without names, whatever the caller (see `delivery_why`).
DELIVERY_FORMATS = {"pdf": "application/pdf", "csv": "text/csv; charset=utf-8"}


@signed_in
async def delivery_pack(request: Request, caller: Caller) -> Response:
    """The delivery pack without names: a list of names is made only on the owner's machine
    (`petition-widget delivery`), so the server never hands one to a browser session."""
    fmt = request.path_params["format"]
    entry = await _managed(request, caller)
    if isinstance(entry, Response):
        return entry
    if fmt not in DELIVERY_FORMATS:
        return not_found(request, caller)
    asked = request.query_params.get("lang", "")
    lang = asked if asked in entry.petition.languages else entry.petition.lang
    storage = services_of(request).storage
    made = await delivery.pack(storage, entry, lang=lang, with_names=False)
    if fmt == "csv":
        data = delivery_csv(made).encode()
    else:
        try:
            # Drawing takes tens of milliseconds of pure Python: off the event loop.
            data = await asyncio.to_thread(delivery_pdf.render, made, delivery_pdf.Fonts.find())
        except (delivery_pdf.MissingFonts, delivery_pdf.MissingGlyphs) as exc:
            logger.warning("delivery pack of %s: %s", entry.slug, exc)
            return Response(str(exc), 503, media_type="text/plain; charset=utf-8")
    day = datetime.datetime.now(datetime.UTC).date().isoformat()
    return Response(
        data,
        media_type=DELIVERY_FORMATS[fmt],
        headers={
            "Content-Disposition": f'attachment; filename="{entry.slug}-delivery-{day}.{fmt}"',
            "Cache-Control": "no-store",
        },
    )


async def asset(request: Request) -> Response:
    _, assets = _files()
    found = assets.get(request.path_params["name"])
    if found is None:
        return Response("not found", 404, media_type="text/plain")
    return found.response(request, IMMUTABLE)


routes = [
    Route("/admin", overview, methods=["GET"]),
    Route("/admin/login", login_page, methods=["GET"]),
    Route("/admin/login", login, methods=["POST"]),
    Route("/admin/logout", logout, methods=["POST"]),
    Route("/admin/assets/{name}", asset, methods=["GET"]),
    Route("/admin/petitions/{slug}", petition_page, methods=["GET"]),
    Route("/admin/petitions/{slug}/status", change_status, methods=["POST"]),
    Route("/admin/petitions/{slug}/goal", change_goal, methods=["POST"]),
    Route("/admin/petitions/{slug}/webhooks/{endpoint}/redeliver", redeliver, methods=["POST"]),
    Route("/admin/petitions/{slug}/export.{format}", export_signatures, methods=["GET"]),
    Route("/admin/petitions/{slug}/domains", domain_lookup, methods=["GET"]),
    Route("/admin/petitions/{slug}/delivery.{format}", delivery_pack, methods=["GET"]),
    Route("/admin/petitions/{slug}/partners/{code}", partner_page, methods=["GET"]),
    Route(
        "/admin/petitions/{slug}/partners/{code}/export.{format}",
        export_signatures,
        methods=["GET"],
    ),
]
