"""The rate limits of the public endpoints, applied the same way wherever they apply: who the
client is to a limit (`client_text`), and which limits a signature and a form token pass.
The limiters themselves are `domain.ratelimit.SharedLimiter`s, shared by every worker and
host through `store.limits`."""

from __future__ import annotations

from starlette.requests import Request

from server.domain.petitions import Entry
from server.web import client_address
from server.web.services import Services, services_of


def client_text(request: Request) -> str:
    """What limits count this request's client as (its address, or its IPv6 /64)."""
    settings = services_of(request).settings
    return client_address.client_text(request.scope, settings.trusted_proxies)


def rate_limited(services: Services, request: Request, entry: Entry | None) -> int:
    """Seconds to wait, or 0: the client limit counts everything, the sign limit per petition."""
    if not (services.client_limiter.per_minute or services.sign_limiter.per_minute):
        return 0
    client = client_text(request)
    wait = services.client_limiter.hit(client)
    if not wait and entry is not None:
        wait = services.sign_limiter.hit((client, entry.id))
    return wait


def token_limited(services: Services, request: Request, entry: Entry) -> int:
    """Seconds to wait before this client may have another form token for this petition, or
    0 (and the token is counted). Tokens are limited like signatures, or a flood could take a
    fresh single-use token for every signature it sends."""
    if not (services.client_limiter.per_minute or services.token_limiter.per_minute):
        return 0
    client = client_text(request)
    wait = services.client_limiter.hit(client)
    if not wait:
        wait = services.token_limiter.hit((client, entry.id))
    return wait
