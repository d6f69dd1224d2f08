"""The public JSON API: a petition with its live count, form tokens, signatures, health.

Endpoints are thin: they find the petition, apply rate limits, decode the request, call the
domain (through `submission`), and shape the answer. Reads are served from the in-memory
registry; a petition's JSON is built once per count change and answered with `304` when
unchanged.
Every answer allows any origin (`Access-Control-Allow-Origin: *`): the public API holds nothing
private, and partners may build their own forms on it. A caller with an access key
(`Authorization: Bearer ...`, from a server or script: browsers on other origins cannot send it,
as the preflight does not allow the header) also gets the per-partner breakdown it may see,
and the totals by country and language (`domain/breakdowns`), read from the database and never
cached. A petition whose file says `[public] by_country = true` publishes its totals by
country to everyone, small cells hidden; those are read again at most every
`BREAKDOWN_REFRESH` seconds (a `GROUP BY` over the petition's rows, not a dictionary lookup),
and only while the count moves, so the document and its ETag change when they do.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import gzip
import hashlib
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from server.domain import access, breakdowns, i18n, links, richtext
from server.domain.form_tokens import Claims
from server.domain.partners import normalise_code
from server.domain.petitions import Entry
from server.store import outbox, totals
from server.store.engine import describe
from server.store.signatures import MAIL_TOPIC
from server.web import auth, limiting, payloads, submission, widget
from server.web.assets import Parts, Prebuilt, accepts_gzip, prebuilt
from server.web.responses import (
    JSON_HEADERS,
    error_response,
    json_response,
    preflight_headers,
)
from server.web.services import Services, petition_endpoint, services_of

logger = logging.getLogger("petition_widget.api")

PREFLIGHT = preflight_headers("GET, POST, OPTIONS", "Content-Type, If-None-Match")
HEALTH_TIMEOUT = 3.0  # seconds each health check may take before it counts as failed
RECENT_WRITE_FAILURE = 5.0  # seconds a failed group of signatures keeps writes "unavailable"
PETITION_MAX_AGE = 5  # seconds a browser or CDN may reuse a petition's JSON without asking


def request_language(request: Request, entry: Entry | None = None, asked: Any = None) -> str:
    available = entry.petition.languages if entry else i18n.LANGUAGES
    default = entry.petition.lang if entry else i18n.DEFAULT_LANGUAGE
    requested = asked if isinstance(asked, str) else None
    if requested is None and b"lang=" in request.scope["query_string"]:
        requested = request.query_params.get("lang")  # parsed only when it may be there
    accept = request.headers.get("accept-language", "")
    return i18n.choose_language(requested, accept, available, default)


# --- Petition --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PetitionDocument:
    """A petition's public JSON in one language, plain and gzipped, as ready responses."""

    count: int
    revision: int
    goal: int
    by_country: Any  # the public totals by country it was built with (None: not published)
    etag: str  # of the plain body; the gzipped one is another representation, with its own
    response: Parts
    gzip_response: Parts
    not_modified: Parts
    not_modified_gzip: Parts

    @classmethod
    def build(
        cls,
        data: dict[str, Any],
        count: int,
        revision: int,
        goal: int,
        by_country: Any = None,
    ) -> PetitionDocument:
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        digest = hashlib.blake2b(body, digest_size=12).hexdigest()
        common = {
            **JSON_HEADERS,
            "Cache-Control": f"public, max-age={PETITION_MAX_AGE}",
            # A cache must not answer a keyed request with this public copy, nor the reverse.
            "Vary": "Accept-Language, Accept-Encoding, Authorization",
        }
        headers = {**common, "ETag": f'"{digest}"'}
        gzip_headers = {**common, "ETag": f'"{digest}-gz"', "Content-Encoding": "gzip"}
        gzipped = gzip.compress(body, compresslevel=9, mtime=0)
        json_type = "application/json"
        return cls(
            count=count,
            revision=revision,
            goal=goal,
            by_country=by_country,
            etag=f'"{digest}"',
            response=prebuilt(200, headers, body, json_type),
            gzip_response=prebuilt(200, gzip_headers, gzipped, json_type),
            not_modified=prebuilt(304, headers),
            not_modified_gzip=prebuilt(304, gzip_headers),
        )


class PetitionDocuments:
    """Each petition's JSON per language, built and compressed only when its count or content
    changes: a read is a dictionary lookup."""

    def __init__(self) -> None:
        self._built: dict[tuple[int, str], PetitionDocument] = {}
        self._countries = _PublicCountries()

    async def get(self, services: Services, entry: Entry, lang: str) -> PetitionDocument:
        count = services.registry.count(entry)
        revision = services.registry.revision
        goal = services.registry.goal(entry)  # an auto_goal's step is not the count's alone
        by_country = None
        if entry.petition.public_by_country:
            by_country = await self._countries.get(services, entry, count)
        built = self._built.get((entry.id, lang))
        if built is None or (built.count, built.goal, built.revision, built.by_country) != (
            count,
            goal,
            revision,
            by_country,
        ):
            data = petition_data(services, entry, lang, count)
            if by_country is not None:
                data["by_country"] = by_country
            built = PetitionDocument.build(data, count, revision, goal, by_country)
            self._built[(entry.id, lang)] = built
        return built


class _PublicCountries:
    """The public totals by country of each petition that publishes them, small cells hidden:
    read again when the count has moved and `BREAKDOWN_REFRESH` seconds have passed, by one
    request at a time (the others meanwhile get the totals read before)."""

    def __init__(self) -> None:
        self._read: dict[int, tuple[float, int, list[dict[str, Any]]]] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    async def get(
        self, services: Services, entry: Entry, count: int
    ) -> list[dict[str, Any]] | None:
        """The cells; the last ones read while the database cannot be read (None before any:
        the document then goes without them rather than fail, as it never needed the
        database before)."""
        read = self._read.get(entry.id)
        if read is not None and (
            read[1] == count or time.monotonic() - read[0] < services.settings.breakdown_refresh
        ):
            return read[2]
        lock = self._locks.setdefault(entry.id, asyncio.Lock())
        if lock.locked() and read is not None:
            return read[2]
        async with lock:
            again = self._read.get(entry.id)
            if again is not None and again is not read:  # read by another request meanwhile
                return again[2]
            try:
                counts = await totals.by_country(services.storage, entry.id)
            except Exception as exc:
                logger.warning("totals by country of %s not read: %s", entry.slug, describe(exc))
                if read is None:
                    return None
                # Tried again after BREAKDOWN_REFRESH, not on every request meanwhile.
                self._read[entry.id] = (time.monotonic(), read[1], read[2])
                return read[2]
            cells = breakdowns.cells(counts, key="country", exact=False)
            self._read[entry.id] = (time.monotonic(), count, cells)
            return cells


def petition_data(services: Services, entry: Entry, lang: str, count: int) -> dict[str, Any]:
    texts = entry.petition.in_language(lang)
    base = services.settings.base_url
    return {
        "slug": entry.slug,
        "lang": lang,
        "languages": list(entry.petition.languages),
        "title": texts.title,
        "summary": texts.summary,
        "target": texts.target,
        "statement_html": richtext.render(texts.statement),
        "body_html": richtext.render(texts.body),
        "updates": [
            {"date": u.date.isoformat(), "kind": u.kind, "html": richtext.render(u.text)}
            for u in texts.updates
        ],
        "legal_notice": texts.legal_notice,
        "organiser": texts.organiser,
        "goal": services.registry.goal(entry),  # the shown goal (`auto_goal`)
        "signatures": count,
        "status": entry.status,
        "updated_at": _iso(entry.updated_at),
        "form": {"country": entry.petition.country, "comment": entry.petition.comment},
        "widget_url": f"{base}/widget/{entry.slug}",
        "sign_url": f"{base}/api/petitions/{entry.slug}/signatures",
    }


def _iso(timestamp: int) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.isoformat().replace("+00:00", "Z")


def _no_petition(request: Request) -> Response:
    return error_response(404, "not_found", request_language(request))


@petition_endpoint(_no_petition)
async def petition(request: Request, services: Services, entry: Entry) -> Response:
    lang = request_language(request, entry)
    if "authorization" in request.headers:
        return await _keyed_petition(request, services, entry, lang)
    document = await request.app.state.petition_documents.get(services, entry, lang)
    gzipped = accepts_gzip(request)
    if document.etag[:-1] in request.headers.get("if-none-match", ""):  # either encoding's
        return Prebuilt(document.not_modified_gzip if gzipped else document.not_modified)
    return Prebuilt(document.gzip_response if gzipped else document.response)


PRIVATE = {"Cache-Control": "private, no-store", "Vary": "Accept-Language, Authorization"}


async def _keyed_petition(
    request: Request, services: Services, entry: Entry, lang: str
) -> Response:
    """The petition with the `partners` breakdown this key may see: every partner for an owner,
    its own line for a partner. Any wrong key is the same 401; another petition's key is 403."""
    storage = services.storage
    wait = auth.guesses_wait(request)
    if wait:
        return auth.too_many_guesses(wait)
    principal = await auth.authenticate(storage, access.bearer(request.headers["authorization"]))
    if principal is None:
        auth.guessed_wrong(request)
        return json_response(
            {"error": "unauthorized", "message": "A valid access key is needed."},
            401,
            {**PRIVATE, "WWW-Authenticate": 'Bearer realm="petition-widget"'},
        )
    if not principal.may_see(entry.id):
        message = "This key does not open this petition."
        return json_response({"error": "forbidden", "message": message}, 403, PRIVATE)
    async with storage.session():
        by_partner = await storage.partner_totals(entry.id)
        partners = await storage.petition_partners(entry.id)
        activity = await storage.partner_activity(entry.id)
        unknown = await storage.unknown_partner_activity(entry.id) if principal.is_owner else []
        # An owner sees every signer's totals, exactly; a partner its own signers', small
        # cells hidden (its own count stays exact, in `partners`).
        own = None if principal.is_owner else principal.partner_id
        countries = await totals.by_country(storage, entry.id, own)
        languages = await totals.by_language(storage, entry.id, own)
    data = petition_data(services, entry, lang, sum(by_partner.values()))
    exact = principal.is_owner
    data["by_country"] = breakdowns.cells(countries, key="country", exact=exact)
    data["by_language"] = breakdowns.cells(languages, key="lang", exact=exact)
    data["partners"] = [
        {
            "code": p.code,
            "name": p.name,
            "signatures": by_partner.get(p.id, 0),
            "last_signature_at": _iso(activity[p.id].last_signature_at)
            if p.id in activity
            else None,
        }
        for p in partners
        if principal.may_see_partner(entry.id, p.id)
    ]
    if principal.is_owner:
        data["without_partner"] = {
            "signatures": by_partner.get(None, 0) - sum(u.signatures for u in unknown),
            "unknown_codes": [
                {
                    "code": u.code,
                    "signatures": u.signatures,
                    "last_signature_at": _iso(u.last_signature_at),
                }
                for u in unknown
            ],
        }
    return json_response(data, headers=PRIVATE)


# --- Tokens and signatures -------------------------------------------------------------------


@petition_endpoint(_no_petition)
async def token(request: Request, services: Services, entry: Entry) -> Response:
    lang = request_language(request, entry)
    wait = limiting.token_limited(services, request, entry)
    if wait:
        return error_response(429, "rate_limited", lang, retry_after=wait)
    partner = normalise_code(request.query_params.get("partner"))
    return json_response(fresh_token(services, entry, partner, lang), headers=NO_STORE)


NO_STORE = {"Cache-Control": "no-store"}


def fresh_token(
    services: Services,
    entry: Entry,
    partner: str,
    lang: str,
    since: float | None = None,
    *,
    challenge: bool = False,
) -> dict[str, Any]:
    """A new form token (renewing one first given at `since`), with its `challenge` while one
    is on, or when asked for (docs/challenge.md)."""
    issued = services.tokens.issue(entry.slug, partner, lang, since)
    answer: dict[str, Any] = {"token": issued, "expires_in": services.tokens.lifetime}
    if challenge or submission.challenged(services, entry):
        answer["challenge"] = submission.puzzle(services, issued)
    return answer


SIGNED_HEADERS = {**JSON_HEADERS, "Cache-Control": "no-store"}
# One body for every accepted submission of a petition that confirms by email: byte for byte.
CONFIRMATION_SENT = b'{"status":"confirmation_sent"}'


@petition_endpoint(_no_petition)
async def signatures(request: Request, services: Services, entry: Entry) -> Response:
    """The hot path of a surge: nothing here is done for a signature that does not need it
    (the language, for one, is worked out only to word a refusal)."""
    as_html = payloads.kind(request) == "form" and widget.prefers_html(request)
    wait = limiting.rate_limited(services, request, entry)
    if wait:
        submission.note_refusal(services, entry, "rate_limited")
    if wait and not as_html:
        return error_response(429, "rate_limited", request_language(request, entry), wait)
    try:
        fields = await payloads.read_fields(request, services.settings.max_body_bytes)
    except payloads.PayloadError as exc:
        submission.note_refusal(services, entry, exc.code)
        return _refusal(request, entry, as_html, exc.status, exc.code)
    except ClientDisconnect:
        return Response(status_code=400)  # nobody is left to read it
    if wait:  # someone without JavaScript gets the form back as typed (the body is capped)
        return _refusal(request, entry, as_html, 429, "rate_limited", wait, fields)
    over_limit = submission.over_network_limit(services, request.scope, entry)
    outcome = await submission.sign(services, entry, fields, over_limit, no_script=as_html)
    if as_html:
        return widget.sign_result(request, entry, outcome, fields)
    if outcome.confirmation_sent:
        return Response(CONFIRMATION_SENT, 202, SIGNED_HEADERS, media_type="application/json")
    if outcome.signed and outcome.count is not None:
        url = services.settings.base_url + links.path(links.WITHDRAW, outcome.withdraw_token or "")
        body = b'{"status":"signed","signatures":%d,"withdraw_url":%s}' % (
            outcome.count,
            json.dumps(url).encode(),
        )
        return Response(body, 201, SIGNED_HEADERS, media_type="application/json")
    lang = request_language(request, entry, fields.get("lang"))
    if outcome.fields:
        t = i18n.catalog(lang)
        errors = {name: t(key, **values) for name, (key, values) in outcome.fields.items()}
        return json_response(
            {"error": "invalid_fields", "message": t("form_errors"), "errors": errors},
            422,
            {"Cache-Control": "no-store"},
        )
    assert outcome.error is not None
    if outcome.error in RENEWED and outcome.claims is not None:
        return _renewed(services, entry, outcome, outcome.claims, lang)
    return error_response(outcome.status, outcome.error, lang, outcome.retry_after)


# Refusals answered with what a retry needs: a fresh token, bound to the same partner and
# language, and its challenge while one is on (always after "challenge_required", even if
# "auto" went off meanwhile: the contract says a fresh challenge comes with it).
RENEWED = ("expired_token", "challenge_required")


def _renewed(
    services: Services,
    entry: Entry,
    outcome: submission.Outcome,
    claims: Claims,
    lang: str,
) -> Response:
    """The answer to a refused genuine token, with its renewal. The renewal keeps when its
    visitor first got the form: a person whose form expired while they filled it in, or whose
    widget is solving a challenge, signs again at once, with no "too fresh" wait."""
    renewed = fresh_token(
        services, entry, claims.partner, claims.lang, claims.since,
        challenge=outcome.error == "challenge_required",
    )  # fmt: skip
    message = i18n.catalog(lang)(f"error_{outcome.error}")
    refusal = {"error": outcome.error, "message": message, **renewed}
    return json_response(refusal, outcome.status, NO_STORE)


@petition_endpoint(_no_petition)
async def signatures_page(request: Request, services: Services, entry: Entry) -> Response:
    """The signing address opened in a browser (the address bar of a form answered without
    JavaScript, reloaded or shared): the widget, not a `405` in JSON. Others get the `405`."""
    if "text/html" not in request.headers.get("accept", ""):
        refused = error_response(405, "method_not_allowed")
        refused.headers["Allow"] = "POST, OPTIONS"
        return refused
    location = f"/widget/{entry.slug}"
    return Response(status_code=303, headers={"Location": location, **NO_STORE})


def _refusal(
    request: Request,
    entry: Entry,
    as_html: bool,
    status: int,
    code: str,
    retry_after: int | None = None,
    fields: Mapping[str, Any] | None = None,
) -> Response:
    if as_html:
        claims = services_of(request).tokens.peek((fields or {}).get("token"))
        outcome = submission.Outcome(status, error=code, retry_after=retry_after, claims=claims)
        return widget.sign_result(request, entry, outcome, fields or {})
    return error_response(status, code, request_language(request, entry), retry_after)


async def preflight(request: Request) -> Response:
    return Response(status_code=204, headers=PREFLIGHT)


# --- Health ------------------------------------------------------------------------------------


async def healthz(request: Request) -> Response:
    services = services_of(request)
    problems = {}
    try:  # a hung database is a problem to report, not a reason to hang the health check
        await asyncio.wait_for(services.storage.ping(), HEALTH_TIMEOUT)
    except Exception as exc:
        problems["database"] = describe(exc)
    writer = services.writer
    if writer.failure:
        # The last write failed. Try one now: storage may be back, and a server that says
        # "unavailable" until its next signature would never get one behind a load balancer.
        # A small write can succeed while groups of signatures still fail (a disk with a few
        # pages left): while groups failed in the last few seconds, that is still a problem.
        try:
            await asyncio.wait_for(services.storage.probe_write(), HEALTH_TIMEOUT)
            if time.monotonic() - writer.failed_at < RECENT_WRITE_FAILURE:
                problems["writes"] = writer.failure
            else:
                writer.failure = None
        except Exception as exc:
            problems["writes"] = describe(exc)
    if services.registry.failure:
        problems["counts"] = services.registry.failure
    # A mail backlog is reported, never a reason to take the server out of a load balancer:
    # signing still works, and mails go out once the mail server takes them again.
    oldest: int | None = None
    # Only when the database answered: a query cancelled by the timeout mid-flight can leave
    # its pooled connection broken, and a health check polled through an outage would then
    # use up the pool.
    if "database" not in problems:
        with contextlib.suppress(Exception):
            age = await asyncio.wait_for(
                outbox.oldest_pending_age(
                    services.storage,
                    time.time(),
                    MAIL_TOPIC,
                    # Sealed, mail rows keep their times to the hour.
                    to_the_hour=bool(services.settings.sealing_public_key),
                ),
                HEALTH_TIMEOUT,
            )
            oldest = None if age is None else int(age)
    headers = {"Cache-Control": "no-store"}
    if problems:
        body = {"status": "unavailable", "problems": problems, "oldest_unsent_mail_s": oldest}
        return json_response(body, 503, headers)
    return json_response({"status": "ok", "oldest_unsent_mail_s": oldest}, 200, headers)


routes = [
    Route("/api/petitions/{slug}", petition, methods=["GET", "HEAD"]),
    Route("/api/petitions/{slug}/token", token, methods=["GET"]),
    Route("/api/petitions/{slug}/signatures", signatures, methods=["POST"]),
    Route("/api/petitions/{slug}/signatures", signatures_page, methods=["GET"]),
    Route("/api/petitions/{slug}/signatures", preflight, methods=["OPTIONS"]),
    Route("/api/petitions/{slug}", preflight, methods=["OPTIONS"]),
    Route("/healthz", healthz, methods=["GET", "HEAD"]),
]
