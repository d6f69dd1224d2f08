"""Answers that several endpoints give alike: JSON and its errors, the public 404 page, and the
one Jinja environment setting that every template shares.

`X-Content-Type-Options: nosniff` is on none of them: the app's outermost layer adds it to
every answer (`app._Guard`), so no endpoint can forget it.
"""

from __future__ import annotations

import datetime
import functools
import json
from pathlib import Path
from typing import Any

import jinja2
import jinja2.runtime
from starlette.requests import Request
from starlette.responses import Response

from server.domain import i18n
from server.web.bundle import WIDGET_DIR

CORS = {"Access-Control-Allow-Origin": "*"}


def preflight_headers(methods: str, headers: str) -> dict[str, str]:
    """A CORS preflight's answer for any origin: these methods and request headers, cached
    by the browser for a day."""
    return {
        **CORS,
        "Access-Control-Allow-Methods": methods,
        "Access-Control-Allow-Headers": headers,
        "Access-Control-Max-Age": "86400",
    }


# Every JSON answer is readable from any site: the public API holds nothing private, and keyed
# answers say `private, no-store` (browsers on other origins cannot send the key anyway).
JSON_HEADERS = CORS
NO_STORE_STATUSES = frozenset((400, 403, 404, 409, 413, 415, 422, 429, 503))


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {**JSON_HEADERS, **(headers or {})}
    return Response(body, status, headers, media_type="application/json")


def error_response(
    status: int, code: str, lang: str = i18n.DEFAULT_LANGUAGE, retry_after: int | None = None
) -> Response:
    t = i18n.catalog(lang)
    message = t(f"error_{code}") if f"error_{code}" in t.messages else code.replace("_", " ")
    headers = {"Retry-After": str(retry_after)} if retry_after else {}
    if status in NO_STORE_STATUSES:
        headers["Cache-Control"] = "no-store"
    return json_response({"error": code, "message": message}, status, headers)


def not_found(request: Request) -> Response:
    """The public 404 page: a line in the visitor's language, loading nothing."""
    t = i18n.catalog(i18n.choose_language(
        request.query_params.get("lang"), request.headers.get("accept-language", ""),
        i18n.LANGUAGES, i18n.DEFAULT_LANGUAGE,
    ))  # fmt: skip
    body = (
        f'<!doctype html><html lang="{t.lang}" dir="{t.dir}"><meta charset=utf-8>'
        f"<title>404</title><p>{t('error_not_found')}</p></html>"
    )
    headers = {
        "Content-Security-Policy": "default-src 'none'; base-uri 'none'; form-action 'none'",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }
    return Response(body, 404, headers, media_type="text/html")


TEMPLATE_DIRS = (
    WIDGET_DIR,  # widget.html, the iframe document
    Path(__file__).parent / "templates" / "admin",  # the dashboard
    Path(__file__).parent / "templates" / "pages",  # the pages links in mails open
)


@functools.cache
def templates() -> jinja2.Environment:
    """The one Jinja environment of every page: autoescaped (petition files and signers supply
    text), with block tags that leave no blank lines behind. Template names are unique across
    its directories."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIRS),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # Script data as UTF-8, not \uXXXX escapes: a third of the size in Russian. (`tojson`
    # still escapes <, >, & and ', so the data cannot end its <script> element.)
    env.policies["json.dumps_kwargs"] = {"sort_keys": True, "ensure_ascii": False}
    # Numbers, percentages and times in the language of the page: the catalog `t` its
    # context carries (English where it has none).
    env.filters["when"] = _when
    env.filters["number"] = jinja2.pass_context(lambda c, n: _catalog(c).number(n))
    env.filters["percent"] = jinja2.pass_context(lambda c, x: _catalog(c).percent(x))
    return env


def _catalog(context: jinja2.runtime.Context) -> i18n.Catalog:
    t = context.get("t")
    return t if isinstance(t, i18n.Catalog) else i18n.catalog(i18n.DEFAULT_LANGUAGE)


@jinja2.pass_context
def _when(context: jinja2.runtime.Context, timestamp: int | None) -> str:
    """A dashboard time, to the minute, as the page's language writes a date and time, in the
    page's `zone` (a petition's `timezone`, the zone its charts speak), else UTC; the zone is
    named, so a time is never read in the wrong one."""
    if timestamp is None:
        return "—"
    zone = context.get("zone")
    if not isinstance(zone, datetime.tzinfo):
        zone = datetime.UTC
    moment = datetime.datetime.fromtimestamp(timestamp, zone)
    return f"{_catalog(context).skeleton(moment, 'yMMMdHm')} {zone}"
