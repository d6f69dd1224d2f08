"""The long-lived parts of a running server that endpoints use, built once at start-up by
`server.wiring` and found on the app's state by `services_of`."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from server.domain.challenge import Challenges, Switch
from server.domain.form_tokens import FormTokens
from server.domain.petitions import Entry
from server.domain.ratelimit import Limits, SharedLimiter
from server.domain.sealing import EmailHasher
from server.settings import Settings
from server.store.clock import Clock
from server.store.limits import LimitStore
from server.store.registry import Registry
from server.store.runner import JobRunner
from server.store.storage import Storage
from server.store.writer import Writer


@dataclasses.dataclass
class Services:
    settings: Settings
    storage: Storage
    writer: Writer
    registry: Registry
    tokens: FormTokens
    # Rate limits, shared by every worker and host (`store.limits` syncs `limits`).
    limits: Limits
    limit_store: LimitStore
    sign_limiter: SharedLimiter  # signatures per client address and petition
    client_limiter: SharedLimiter  # tokens, signatures and link posts per client address
    token_limiter: SharedLimiter  # form tokens per client address and petition
    login_limiter: SharedLimiter  # failed sign-ins and bearer keys per client address
    # The aggregate limit, per network (`client_address.network_text`) and petition: over it,
    # a signature is quarantined, never refused (`submission.over_network_limit`).
    network_limiter: SharedLimiter
    clock: Clock  # wall time: the writer's, the link pages' and the jobs' (a test may drive it)
    jobs: JobRunner  # the background work of this process
    challenges: Challenges  # the proof-of-work puzzles of form tokens
    challenge_switch: Switch  # "auto": when refusals turn a petition's challenge on
    # The keyed hash that stands for addresses (`EMAIL_HASH_KEY`); None only in tests that
    # build services by hand without one.
    email_hasher: EmailHasher | None = None


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


PetitionHandler = Callable[[Request, Services, Entry], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def petition_endpoint(
    missing: Callable[[Request], Response],
) -> Callable[[PetitionHandler], Endpoint]:
    """An endpoint about the petition named by `{slug}` in its path: the handler gets the
    services and the petition, and `missing` answers for a slug this server does not know."""

    def decorate(handler: PetitionHandler) -> Endpoint:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            services: Services = request.app.state.services
            entry = services.registry.get(request.path_params["slug"])
            if entry is None:
                return missing(request)
            return await handler(request, services, entry)

        return endpoint

    return decorate
