"""Who is asking: an access key (or a session naming one) becomes a `Principal`, checked against
the database on every request.

Wrong keys are counted per client address (`Services.login_limiter`, shared by every worker and
host), at sign-in and in `Authorization` headers alike: past the limit, the client is answered
`429` without its key being looked at, for at most a minute (`guesses_wait`, `guessed_wrong`).

There is no per-process cache of keys: a key revoked by the CLI or on another host stops
working on the very next request everywhere, at the cost of one indexed read per admin request
(admin traffic is small). Every refusal is the same `None`, whatever was wrong (shape, unknown
id, wrong secret, revoked), so an answer never hints at which part was wrong. The rules
themselves are pure, in `server.domain.access`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from server.domain import access, access_keys
from server.domain.access import Principal
from server.store.storage import Storage
from server.web import client_address
from server.web.services import services_of


async def authenticate(storage: Storage, presented: object) -> Principal | None:
    """The principal of a whole key as presented, or None for anything else."""
    key = access_keys.parse(presented)
    if key is None:
        return None
    return access.check(key, await storage.access_key(key.id))


async def by_key_id(storage: Storage, key_id: str) -> Principal | None:
    """The principal of a key named by a signed session (the secret was checked at login);
    None once the key is revoked."""
    row = await storage.access_key(key_id)
    if row is None or not access.usable(row):
        return None
    return access.principal_of(row)


def guesses_wait(request: Request) -> int:
    """Seconds before this client may present another key; 0 if it may now."""
    services = services_of(request)
    return services.login_limiter.wait(_client(request))


def guessed_wrong(request: Request) -> None:
    """Count a wrong key presented by this client."""
    services_of(request).login_limiter.count(_client(request))


def _client(request: Request) -> str:
    return client_address.client_text(request.scope, services_of(request).settings.trusted_proxies)


def too_many_guesses(wait: int) -> Response:
    """The `429` of an API call with a key, past the limit on wrong keys."""
    return Response(
        '{"error":"rate_limited","message":"Too many wrong keys from your address; '
        'try again later."}',
        429,
        {"Retry-After": str(wait), "Cache-Control": "no-store"},
        media_type="application/json",
    )
