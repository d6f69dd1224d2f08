"""The long-lived parts of a running server that endpoints use, built once at start-up by
`server.wiring` and found on the app's state by `services_of`."""

from __future__ import annotations

import dataclasses

from starlette.requests import Request

from server.domain.form_tokens import FormTokens
from server.domain.ratelimit import RateLimiter
from server.settings import Settings
from server.store.registry import Registry
from server.store.storage import Storage
from server.store.writer import Writer


@dataclasses.dataclass
class Services:
    settings: Settings
    storage: Storage
    writer: Writer
    registry: Registry
    tokens: FormTokens
    sign_limiter: RateLimiter  # per client address and petition
    client_limiter: RateLimiter  # per client address, over all petitions
    client_secret: bytes  # keys the hash that stands for a client's address


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services
