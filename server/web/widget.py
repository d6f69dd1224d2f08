"""The widget: the loader partners paste (`/embed.js`), the document inside its iframe
(`/widget/{slug}`), its fingerprinted assets, and the HTML answers of the no-JavaScript form.

The document is rendered in one response with the live count and a fresh form token already
in it. Its Content-Security-Policy allows only our own script and stylesheet, plus one small
inline style (the accent colour and the bar's width) allowed by its hash; `frame-ancestors`
lets every site embed it unless the petition lists the sites that may. Open widgets follow the
count through `/widget/{slug}/count`, a few bytes answered with `304` while nothing changed.
See docs/widget.md.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.domain import countries, i18n, richtext
from server.domain.partners import INVALID_CODE, Partner, normalise_code
from server.domain.petitions import THEMES, Entry
from server.domain.placeholder import Space
from server.domain.progress import Progress
from server.domain.signatures import consent_wording, form_language
from server.web import limiting
from server.web.assets import IMMUTABLE, Asset, Parts, Prebuilt, accepts_gzip, compressed, prebuilt
from server.web.bundle import WIDGET_DIR
from server.web.responses import not_found, preflight_headers, templates
from server.web.services import Services, petition_endpoint, services_of
from server.web.stencil import Stencil
from server.web.submission import Outcome, challenged, is_preview

POLL_SECONDS = 30  # how often a visible widget asks for the count (a 304 when unchanged)
LOADER_MAX_AGE = 3600  # embed.js keeps its URL, so it is cached for an hour, not forever
SOLVER = "challenge.js"  # served as /widget/assets/challenge.js, the name widget.js holds
SOLVER_CACHE = "no-cache"  # kept, but asked again (a 304) each time: a release's solver at once
COUNT_MAX_AGE = 10  # seconds a browser or CDN may reuse a count without asking
# Past max-age, a cache may answer with the old count while it asks again (a minute), or for
# ten minutes while the server fails: a progress bar a little behind beats a broken widget.
COUNT_STALE_WHILE_REVALIDATE = 60
COUNT_STALE_IF_ERROR = 600
# Seconds a document rendered without a token (past the token limit) waits before its script
# asks for one; `/token` then says, with `Retry-After`, how much longer.
TOKEN_RETRY = 10

_HEX_COLOUR = re.compile(r"#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
_ORIGIN = re.compile(r"https?://[a-zA-Z0-9.-]+(:\d{1,5})?|https?://\[[0-9a-fA-F:.]+\](:\d{1,5})?")
_FRAME_ID = re.compile(r"[a-z0-9]{1,20}")
# Form fields that only carry the frame's look across a no-JavaScript round trip.
_KEPT = ("accent", "theme", "layout", "background", "origin", "preview", "frame")
# The looks a snippet may ask for (`data-theme`, `data-layout`, `data-background`, or the same
# in the query): anything else is the default (light, full, the widget's own background).
LOOKS = {"theme": THEMES, "layout": ("full", "compact"), "background": ("solid", "transparent")}


@functools.cache
def _files() -> tuple[jinja2.Environment, dict[str, Asset], Asset]:
    env = templates()
    assets = {
        a.name: a
        for a in (Asset.load(WIDGET_DIR / n, fingerprint=True) for n in ("widget.css", "widget.js"))
    }
    # The proof-of-work solver keeps its name (`SOLVER`), which widget.js holds: no
    # document carries a link to it (their first render is near its budget), and it is fetched
    # only while a challenge is on, so a revalidation then (`SOLVER_CACHE`) costs nothing.
    solver = Asset.load(WIDGET_DIR / SOLVER, fingerprint=False)
    assets[solver.name] = solver
    return env, assets, Asset.load(WIDGET_DIR / "embed.js", fingerprint=False)


def _asset_url(suffix: str) -> str:
    _, assets, _ = _files()
    return "/widget/assets/" + next(
        n for n in assets if n.startswith("widget.") and n.endswith(suffix)
    )


# --- Looks -----------------------------------------------------------------------------------

# The dark palette (WCAG AA like the light one in widget.css, checked by a test): in the inline
# style of documents whose theme is "dark", or "auto" under prefers-color-scheme: dark.
DARK_PALETTE = {
    "accent": "#8ab4f8", "on-accent": "#000", "focus": "#8ab4f8", "bg": "#17181b",
    "fg": "#eceef2", "muted": "#b4b8c0", "line": "#454850", "field": "#202226",
    "error": "#ff8a80", "track": "#30333a", "ok": "#7ddc9b",
}  # fmt: skip


def theme_css(theme: str) -> str:
    """The inline rules of a theme: none for light (widget.css's own palette)."""
    if theme not in ("dark", "auto"):
        return ""
    palette = ";".join(f"--{name}:{value}" for name, value in DARK_PALETTE.items())
    rule = f":root{{{palette};color-scheme:dark}}"
    return rule if theme == "dark" else f"@media (prefers-color-scheme:dark){{{rule}}}"


def accent_colours(raw: str | None) -> tuple[str, str] | None:
    """(accent, text on accent) for a `#rgb`/`#rrggbb` colour; the text colour is black or white,
    whichever contrasts more, so any accent keeps the button readable."""
    match = _HEX_COLOUR.fullmatch((raw or "").strip())
    if not match:
        return None
    digits = match[1]
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    channels = [int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    on_white = 1.05 / (luminance + 0.05)
    on_black = (luminance + 0.05) / 0.05
    return f"#{digits.lower()}", "#fff" if on_white >= on_black else "#000"


def content_security_policy(entry: Entry, inline_style: str) -> str:
    style_hash = base64.b64encode(hashlib.sha256(inline_style.encode()).digest()).decode()
    ancestors = " ".join(("'self'", *entry.petition.frame_ancestors))
    if not entry.petition.frame_ancestors:
        ancestors = "*"
    return (
        "default-src 'none'; script-src 'self'; "
        f"style-src 'self' 'sha256-{style_hash}'; img-src 'self'; connect-src 'self'; "
        f"form-action 'self'; base-uri 'none'; frame-ancestors {ancestors}"
    )


def security_headers(csp: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": csp,
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",  # every document carries a fresh, single-use form token
    }


# --- The document ----------------------------------------------------------------------------


@dataclasses.dataclass
class View:
    """What one rendering of the widget shows besides the petition."""

    lang: str
    partner: str  # the normalised partner code carried by the form token
    state: str = "form"  # form | signed | check_email | closed
    values: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    errors: Mapping[str, str] = dataclasses.field(default_factory=dict)
    message: str = ""
    kept: Mapping[str, str] = dataclasses.field(default_factory=dict)  # look, origin, frame
    status: int = 200
    # The dashboard's live preview: the form as visitors see it, with signing off, so that an
    # owner trying it out does not add to the count or to a partner's list.
    preview: bool = False
    # When the visitor first got a form, for the token of a form shown again after a refusal
    # (`FormTokens.issue(since=...)`): one who has waited is never "too fresh" again.
    since: float | None = None
    challenge: bool = False  # a proof of work is asked for: the script fetches its solver
    # No token: this client has had its share of tokens for now (`limiting.token_limited`).
    # The form says to wait, and the widget's script fetches one when it may.
    waiting: bool = False


def share_page_url(base_url: str, entry: Entry, partner: str = "", lang: str = "") -> str:
    """The petition's share page (`/p/{slug}`), the partner code kept so that a share through
    a social network stays attributed, and the language when it is not the petition's own."""
    query = {"partner": partner} if partner else {}
    if lang and lang != entry.petition.lang:
        query["lang"] = lang
    url = f"{base_url}/p/{urllib.parse.quote(entry.slug)}"
    return url + ("?" + urllib.parse.urlencode(query) if query else "")


# The sites offered after signing, by language: the networks its readers use first (VK and
# Telegram in Russian). Others come in the default order.
_SITE_ORDER = {
    "ru": ("VK", "Telegram", "WhatsApp", "X", "Facebook", "Bluesky"),
    "kk": ("Telegram", "WhatsApp", "VK", "X", "Facebook", "Bluesky"),
    "uk": ("Telegram", "Facebook", "WhatsApp", "X", "Bluesky", "VK"),
}
_DEFAULT_ORDER = ("WhatsApp", "Facebook", "X", "Telegram", "Bluesky", "VK")


def share_links(services: Services, entry: Entry, view: View, title: str) -> dict[str, Any]:
    t = i18n.catalog(view.lang)
    # A malformed code attributes nothing (the share page ignores it): the marker recorded
    # for it is not put into the link a signer shares.
    partner = "" if view.partner == INVALID_CODE else view.partner
    url = entry.petition.share_url or share_page_url(
        services.settings.base_url, entry, partner, view.lang
    )
    quoted = urllib.parse.quote(url, safe="")
    text = urllib.parse.quote(title, safe="")
    subject = urllib.parse.quote(t("share_email_subject", title=title), safe="")
    body = urllib.parse.quote(t("share_email_body", url=url), safe="")
    sites = {
        "Telegram": f"https://t.me/share/url?url={quoted}&text={text}",
        "WhatsApp": f"https://api.whatsapp.com/send?text={text}%20{quoted}",
        "VK": f"https://vk.com/share.php?url={quoted}",
        "X": f"https://x.com/intent/post?url={quoted}&text={text}",
        "Facebook": f"https://www.facebook.com/sharer/sharer.php?u={quoted}",
        "Bluesky": f"https://bsky.app/intent/compose?text={text}%20{quoted}",
    }
    order = _SITE_ORDER.get(view.lang, _DEFAULT_ORDER)
    # Plain links: nothing is loaded from these sites unless the signer follows one. Mastodon
    # has no one site: the script asks for the signer's server and builds its share link.
    return {
        "url": url,
        "title": title,
        "email": f"mailto:?subject={subject}&body={body}",
        "sites": [(name, sites[name]) for name in order],
        "mastodon_text": f"{title} {url}",
    }


# Fresh-form documents, rendered and compressed once per petition, count, language, partner
# and look, with holes for what differs per visitor (server/stencil.py). Rendering one costs
# about 3 ms; filling it, about 20 µs. In a surge the count moves with every group commit, so
# a document is rendered at most that often.
_TOKEN_HOLE = "pwholetoken5e1f0c"  # noqa: S105 - a marker in the page, not a secret
_FRAME_HOLE = "pwholeframe5e1f0c"
_STENCILS: dict[tuple[Any, ...], tuple[Stencil, dict[str, str]]] = {}
_MAX_STENCILS = 1_000


def render(request: Request, services: Services, entry: Entry, view: View) -> Response:
    if not entry.is_open and view.state not in ("signed", "check_email"):
        view.state = "closed"
    view.challenge = challenged(services, entry)
    token = ""
    if view.state == "form" and not view.preview:  # the only state whose form is shown
        if limiting.token_limited(services, request, entry):
            view.waiting = True
        else:
            token = services.tokens.issue(entry.slug, view.partner, view.lang, since=view.since)
    if (
        view.values
        or view.errors
        or view.message
        or view.status != 200
        or view.state in ("signed", "check_email")
    ):
        html, headers = _render(services, entry, view, token, view.kept.get("frame", ""))
        return compressed(request, html, "text/html; charset=utf-8", headers, status=view.status)
    key = (
        entry.id, services.registry.revision, services.registry.count(entry),
        services.registry.goal(entry), view.lang,
        view.partner, view.state, *(view.kept.get(k) for k in _KEPT[:-1]),
        "frame" in view.kept, view.preview, view.challenge, view.waiting,
    )  # fmt: skip
    found = _STENCILS.get(key)
    if found is None:
        if len(_STENCILS) >= _MAX_STENCILS:
            _STENCILS.clear()
        html, headers = _render(services, entry, view, _TOKEN_HOLE, _FRAME_HOLE)
        found = _STENCILS[key] = (
            Stencil(html.decode(), {"token": _TOKEN_HOLE, "frame": _FRAME_HOLE}),
            headers,
        )
    stencil, headers = found
    values = {"token": token, "frame": view.kept.get("frame", "")}
    if accepts_gzip(request):
        body = stencil.gzip(values)
        headers = {**headers, "Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
    else:
        body = stencil.plain(values)
        headers = {**headers, "Vary": "Accept-Encoding"}
    return Response(body, view.status, headers, media_type="text/html; charset=utf-8")


def _render(
    services: Services, entry: Entry, view: View, token: str, frame: str
) -> tuple[bytes, dict[str, str]]:
    """The document's HTML and headers."""
    env, _, _ = _files()
    t = i18n.catalog(view.lang)
    texts = entry.petition.in_language(view.lang)
    texts_lang = view.lang if view.lang in entry.petition.texts else entry.petition.lang
    count = services.registry.count(entry)
    if view.state == "check_email":
        # The answer to a submission that waits for confirmation carries no count: the same
        # page whatever the count is when it is made (the progress bar is not shown on it).
        count = 0
    partner = entry.partners.get(view.partner)
    goal = services.registry.goal(entry)  # the shown goal (`auto_goal`)
    progress = Progress(count, goal)
    colours = accent_colours(view.kept.get("accent"))
    inline_style = f".pw-fill{{width:{progress.percent:.2f}%}}"
    if colours:  # after the theme's palette, so the partner's accent wins in every theme
        inline_style = f":root{{--accent:{colours[0]};--on-accent:{colours[1]}}}" + inline_style
    inline_style = theme_css(look(view.kept)["theme"]) + inline_style
    count_text = t.plural("signed_count", count)
    goal_text = t("goal", goal=t.number(goal))
    origin = view.kept.get("origin", "")
    base = f"/api/petitions/{entry.slug}"
    query = urllib.parse.urlencode({"lang": view.lang, "partner": view.partner})
    context = {
        "lang": view.lang,
        "dir": t.dir,
        "t": t,
        "texts": texts,
        # The petition's own language where it has no translation into the interface's.
        "texts_lang": texts_lang,
        "texts_dir": i18n.catalog(texts_lang).dir,
        "body_html": richtext.markup(texts.body),
        "statement_html": richtext.markup(texts.statement),
        "updates": [
            {
                "kind": u.kind,
                "label": t(u.kind),
                "iso": u.date.isoformat(),
                "date": t.date(u.date),
                "html": richtext.markup(u.text),
            }
            for u in texts.updates
        ],
        "count": count,
        "goal": goal,
        "look": look(view.kept),
        "after_sign_url": entry.petition.after_sign_url,
        "value_max": progress.value_max,
        "count_text": count_text,
        "goal_text": goal_text,
        "state": view.state,
        "preview": view.preview,
        "waiting": view.waiting,
        "message": view.message,
        "values": view.values,
        "errors": view.errors,
        "keep": [(k, frame if k == "frame" else v) for k, v in view.kept.items() if v],
        "token": token,
        # The id the loader gave its frame (`#pw-frame`): its height messages carry it.
        "frame": frame if "frame" in view.kept else "",
        "country": entry.petition.country,
        "comment": entry.petition.comment,
        "countries": countries.choices(view.lang),
        "consent": consent_wording(entry, view.lang, partner),
        "privacy_url": entry.petition.privacy_url,
        "share": share_links(services, entry, view, texts.title),
        "sign_url": f"{base}/signatures",
        "css_url": _asset_url(".css"),
        "js_url": _asset_url(".js"),
        "inline_style": inline_style,
        "data": {
            "lang": view.lang,
            "count": count,
            "goal": goal,
            "goal_text": goal_text,
            "status": entry.status,
            "parent_origin": origin,
            "count_url": f"/widget/{entry.slug}/count",
            "count_etag": _etag(count, goal, entry.status),
            "token_url": f"{base}/token?{query}",
            "poll_seconds": POLL_SECONDS,
            "preview": view.preview,
            # Said only while a challenge is on: the script then solves one as the signer types
            # (a refusal may still bring one later).
            **({"challenge": True} if view.challenge else {}),
            "token_retry": TOKEN_RETRY if view.waiting else 0,
            "numbers": t.number_format,
            "messages": {
                "signed_count": t.plural_forms("signed_count"),
                **{
                    key: t(key)
                    for key in (
                        "sending",
                        "sign_button",
                        "form_errors",
                        "retrying_in",
                        "share_copied",
                        "share_copy_manual",
                        "error_required",
                        "error_email_invalid",
                        "error_network",
                        "check_text",
                        "goal",
                        "closed",
                        "token_wait",
                    )
                },
            },
        },
    }
    html = env.get_template("widget.html").render(context).encode()
    return html, security_headers(content_security_policy(entry, inline_style))


def _kept(params: Mapping[str, Any]) -> dict[str, str]:
    """The look of the frame from query or form fields, each checked against its format."""
    kept = {}
    for name, values in LOOKS.items():
        value = params.get(name)
        if isinstance(value, str) and value in values[1:]:  # the default is no parameter
            kept[name] = value
    accent = params.get("accent")
    if isinstance(accent, str) and accent_colours(accent):
        kept["accent"] = accent
    origin = params.get("origin")
    if isinstance(origin, str) and _ORIGIN.fullmatch(origin):
        kept["origin"] = origin
    frame = params.get("frame")
    if isinstance(frame, str) and _FRAME_ID.fullmatch(frame):
        kept["frame"] = frame
    if is_preview(params):  # a preview stays one across a no-JavaScript round trip
        kept["preview"] = "1"
    return kept


def look(kept: Mapping[str, str]) -> dict[str, str]:
    """The frame's look, every option with its value (the defaults where none was asked)."""
    return {name: kept.get(name, values[0]) for name, values in LOOKS.items()}


def snippet_space(
    entry: Entry, lang: str = "", layout: str = "full", partner: Partner | None = None
) -> Space:
    """The height a snippet reserves for this petition: its language's, or without one (the
    reader's language decides) the tallest of those it may be shown in. A registered
    `partner`'s snippet reserves its consent box too (the widget shows it for its code)."""
    name = partner.name if partner else ""
    if lang:
        return Space.estimate(entry.petition, lang, layout, name)
    return Space.tallest(entry.petition, interface_languages(entry), layout, name)


def interface_languages(entry: Entry) -> list[str]:
    """The languages the widget may be shown in: those in which the signature records the very
    consent wording the signer read (see `signatures.form_language`)."""
    return [lang for lang in sorted(i18n.LANGUAGES) if form_language(entry, lang) == lang]


MISSING_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors *"
)


def missing(request: Request) -> Response:
    """`404` for `/widget/{slug}` of a petition this server does not have: a heading in the
    widget's look (its stylesheet) and its script, which reports the frame's height, so a
    mistyped slug leaves a small frame with a readable line, not a 640 px hole."""
    env, _, _ = _files()
    params = request.query_params
    lang = i18n.choose_language(
        params.get("lang"), request.headers.get("accept-language", ""),
        i18n.LANGUAGES, i18n.DEFAULT_LANGUAGE,
    )  # fmt: skip
    t = i18n.catalog(lang)
    kept = _kept(params)
    context = {
        "lang": lang,
        "dir": t.dir,
        "t": t,
        "css_url": _asset_url(".css"),
        "js_url": _asset_url(".js"),
        "frame": kept.get("frame", ""),  # where widget.js reads it (`#pw-frame`), as in widget.html
        "data": {
            "lang": lang,
            "parent_origin": kept.get("origin", ""),
            "numbers": t.number_format,
        },
    }
    html = env.get_template("missing.html").render(context)
    headers = {**security_headers(MISSING_CSP)}
    return Response(html, 404, headers, media_type="text/html; charset=utf-8")


@petition_endpoint(missing)
async def document(request: Request, services: Services, entry: Entry) -> Response:
    params = request.query_params
    lang = i18n.choose_language(
        params.get("lang"),
        request.headers.get("accept-language", ""),
        interface_languages(entry),
        entry.petition.lang,
    )
    partner = normalise_code(params.get("partner"))
    preview = params.get("preview") == "1" or from_dashboard(request)
    kept = _kept(params) | ({"preview": "1"} if preview else {})
    view = View(lang=lang, partner=partner, kept=kept, preview=preview)
    if "done" in params and not preview:  # the thank-you page's own address (`answered`)
        view.state = services.tokens.answered(params["done"], entry.slug) or "form"
    return render(request, services, entry, view)


def from_dashboard(request: Request) -> bool:
    """Whether a dashboard page asks for this document (its preview frame), whatever the URL
    says: the dashboard sends its own address to our origin (`Referrer-Policy: same-origin`),
    and a preview must never sign, even where a script built its address without preview=1."""
    referer = urllib.parse.urlsplit(request.headers.get("referer", ""))
    return referer.path.startswith("/admin") and referer.netloc == request.headers.get("host")


def prefers_html(request: Request) -> bool:
    """Whether a form post wants a page back (a browser without JavaScript) or JSON."""
    accept = request.headers.get("accept", "")
    return "text/html" in accept or "application/json" not in accept


def sign_result(
    request: Request, entry: Entry, outcome: Outcome, fields: Mapping[str, Any]
) -> Response:
    """The no-JavaScript answer to a form post: for an accepted one, `303 See Other` to the
    thank-you page's own address (`answered`), so that a reload or a shared address shows that
    page, not the API; else the form again with the signer's input kept, errors beside their
    fields and a fresh token."""
    services = services_of(request)
    claims = outcome.claims
    lang = form_language(entry, claims.lang if claims else str(fields.get("lang") or ""))
    t = i18n.catalog(lang)
    view = View(
        lang=lang,
        partner=claims.partner if claims else "",
        kept=_kept(fields),
        status=outcome.status,
        preview=is_preview(fields),
    )
    if outcome.signed or outcome.confirmation_sent:
        return answered(services, entry, view, "signed" if outcome.signed else "check_email")
    if claims is not None and outcome.error != "token_used":
        # A genuine form shown again keeps the time its visitor first got one. Not after
        # "used": that form was signed with, and a chain of them would skip every wait.
        view.since = claims.since
    view.values = {k: v for k, v in fields.items() if isinstance(v, str) and k != "token"}
    for checkbox in ("consent_organiser", "consent_partner", "consent_name_to_target"):
        view.values[checkbox] = str(fields.get(checkbox, "")).lower() in ("on", "true", "1")
    if outcome.fields:
        view.errors = {name: t(key, **values) for name, (key, values) in outcome.fields.items()}
        view.message = t("form_errors")
    elif outcome.error:
        view.message = t(f"error_{outcome.error}")
    response = render(request, services, entry, view)
    if outcome.retry_after:  # a 429 or 503: say when to try again, as the JSON API does
        response.headers["Retry-After"] = str(outcome.retry_after)
    return response


def answered(services: Services, entry: Entry, view: View, kind: str) -> Response:
    """`303` to `/widget/{slug}` with the signed mark of an accepted submission (`done`,
    `FormTokens.mark_answered`), the form's language, partner and look. The address holds
    neither the address typed nor the withdrawal link (an address travels: history, a copied
    link, a proxy's log), and is the same for every accepted submission of the petition in the
    same second, whoever signed and whether they had signed before."""
    query = {"lang": view.lang, **({"partner": view.partner} if view.partner else {})}
    query.update(view.kept)
    query["done"] = services.tokens.mark_answered(entry.slug, kind)
    location = f"/widget/{entry.slug}?{urllib.parse.urlencode(query)}"
    headers = {"Location": location, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    return Response(status_code=303, headers=headers)


# --- The live count ------------------------------------------------------------------------------


def count_etag(services: Services, entry: Entry) -> str:
    """The count's validator; the document carries it, so even a widget's first poll is a 304.
    It changes with any of the three fields, so a raised goal or a closing reaches open
    widgets."""
    return _etag(services.registry.count(entry), services.registry.goal(entry), entry.status)


def _etag(count: int, goal: int, status: str) -> str:
    return f'"{count}-{goal}-{status}"'


@petition_endpoint(not_found)
async def live_count(request: Request, services: Services, entry: Entry) -> Response:
    """The count alone, for open widgets to poll: about 60 bytes, or a `304` with none while it
    has not changed. It is read from the registry in memory, never from the database."""
    etag, answer, not_modified = _count_answers(
        services.registry.count(entry), services.registry.goal(entry), entry.status
    )
    if etag in request.headers.get("if-none-match", ""):
        return Prebuilt(not_modified)
    return Prebuilt(answer)


@functools.lru_cache(maxsize=1024)
def _count_answers(count: int, goal: int, status: str) -> tuple[str, Parts, Parts]:
    """The live count's `ETag`, `200` and `304`, made once per count (open widgets all ask for
    the same few counts, and a busy server answers thousands of polls a second)."""
    etag = _etag(count, goal, status)
    headers = {
        "ETag": etag,
        "Cache-Control": (
            f"public, max-age={COUNT_MAX_AGE}, "
            f"stale-while-revalidate={COUNT_STALE_WHILE_REVALIDATE}, "
            f"stale-if-error={COUNT_STALE_IF_ERROR}"
        ),
        # Public numbers: a partner's own page may show them (the badge is public too).
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Expose-Headers": "ETag",
    }
    body = f'{{"signatures":{count},"goal":{goal},"status":"{status}"}}'.encode()
    return etag, prebuilt(200, headers, body, "application/json"), prebuilt(304, headers)


# A partner's page polling the count from its own origin with `If-None-Match` sends a
# non-simple header, so its browser asks first: the answer allows that header, for a day.
COUNT_PREFLIGHT = preflight_headers("GET, HEAD, OPTIONS", "If-None-Match")


async def live_count_preflight(request: Request) -> Response:
    return Response(status_code=204, headers=COUNT_PREFLIGHT)


# --- Files ---------------------------------------------------------------------------------------


async def loader(request: Request) -> Response:
    _, _, embed = _files()
    return embed.response(request, f"public, max-age={LOADER_MAX_AGE}")


async def asset(request: Request) -> Response:
    _, assets, _ = _files()
    found = assets.get(request.path_params["name"])
    if found is None:
        return not_found(request)
    return found.response(request, SOLVER_CACHE if found.name == SOLVER else IMMUTABLE)


routes = [
    Route("/embed.js", loader, methods=["GET", "HEAD"]),
    Route("/widget/assets/{name}", asset, methods=["GET", "HEAD"]),
    Route("/widget/{slug}", document, methods=["GET", "HEAD"]),
    Route("/widget/{slug}/count", live_count, methods=["GET", "HEAD"]),
    Route("/widget/{slug}/count", live_count_preflight, methods=["OPTIONS"]),
]
