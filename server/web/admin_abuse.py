"""The dashboard's page about abuse, `/admin/petitions/{slug}/signatures`: the signatures an
abuse rule quarantined (counts per hour and partner, never names), the trending panel, and the
form that invalidates or restores signatures in bulk (`store/moderation`).

The form is a POST with the session's CSRF token, like every change of the dashboard. Without
`apply` it is a dry run that says how many it would take, with a button that applies exactly
that selection; its field errors name the field, in the reader's language.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.domain import abuse, trending
from server.domain.petitions import Entry
from server.store import moderation
from server.web.admin import DOMAIN_MINIMUM, Caller, _change, _managed, page, signed_in
from server.web.services import services_of

logger = logging.getLogger("petition_widget.admin")

QUARANTINE_DAYS = 7  # the quarantine table covers the last week, hour by hour
_FIELDS = ("partner", "from", "until", "domain")


@signed_in
async def abuse_page(request: Request, caller: Caller) -> Response:
    entry = await _managed(request, caller)
    if isinstance(entry, Response):
        return entry
    return await _render(request, caller, entry, {"action": abuse.INVALIDATE})


async def bulk(request: Request) -> Response:
    """Preview (no `apply` in the form) or apply an invalidation or a restoration."""
    change = await _change(request)
    if isinstance(change, Response):
        return change
    caller, form, entry = change
    services = services_of(request)
    action = form.get("action")
    typed = {name: str(form.get(name) or "")[:300] for name in _FIELDS}
    values: dict[str, Any] = {
        **typed,
        "action": action,
        "quarantined": bool(form.get("quarantined")),
    }
    if action not in (abuse.INVALIDATE, abuse.RESTORE):
        wrong = ("action", "bulk_nothing_chosen")
        return await _render(request, caller, entry, values, error=wrong, status=400)
    try:
        selection = abuse.select(
            partner=typed["partner"], since=typed["from"], until=typed["until"],
            domain=typed["domain"], quarantined=values["quarantined"],
            hasher=services.email_hasher,
        )  # fmt: skip
    except abuse.BadSelection as bad:
        return await _render(request, caller, entry, values, error=(bad.field, bad.key),
                             status=400)  # fmt: skip
    storage = services.storage
    if not form.get("apply"):
        tally = await moderation.preview(storage, entry.id, selection, action)
        return await _render(request, caller, entry, values, preview=tally)
    tally = await moderation.apply(storage, entry.id, selection, action, int(time.time()))
    logger.info("signatures of %s: %s (%d, %d waiting) by key %s", entry.slug, action,
                tally.signatures, tally.pending, caller.principal.key_id)  # fmt: skip
    await services.registry.refresh()  # this worker at once; the others within COUNT_REFRESH
    count = (await storage.totals()).get(entry.id, 0)
    return await _render(request, caller, entry, values, done=tally, count=count)


async def _render(
    request: Request,
    caller: Caller,
    entry: Entry,
    values: dict[str, Any],
    *,
    status: int = 200,
    **outcome: Any,
) -> Response:
    services = services_of(request)
    storage = services.storage
    now = int(time.time())
    since = (now - QUARANTINE_DAYS * trending.DAY) // trending.HOUR * trending.HOUR
    async with storage.session():
        states = await moderation.states(storage, entry.id)
        held = await moderation.quarantined(storage, entry.id, since)
        codes = [p.code for p in await storage.petition_partners(entry.id)]
    by_partner = await moderation.trends(storage, entry.id, now, by="partner")
    by_domain = await moderation.trends(storage, entry.id, now, by="domain", minimum=DOMAIN_MINIMUM)
    rate = services.settings.rate_net_per_minute
    return page(
        request, "abuse.html", caller, status,
        entry=entry, title=entry.petition.in_language(entry.petition.lang).title,
        states=states, held=held, by_partner=by_partner, by_domain=by_domain, codes=codes,
        form=values, rate=rate, burst=rate * abuse.NETWORK_BURST_MINUTES,
        spike_minimum=trending.SPIKE_MINIMUM, spike_factor=trending.SPIKE_FACTOR,
        domain_minimum=DOMAIN_MINIMUM, error=outcome.pop("error", None), **outcome,
    )  # fmt: skip


routes = [
    Route("/admin/petitions/{slug}/signatures", abuse_page, methods=["GET"]),
    Route("/admin/petitions/{slug}/signatures", bulk, methods=["POST"]),
]
