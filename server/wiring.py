"""The long-lived parts of a running server, built once at start-up and shared by endpoints."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac

from server.domain.form_tokens import FormTokens
from server.domain.ratelimit import RateLimiter
from server.settings import Settings
from server.store.registry import Registry
from server.store.storage import Storage
from server.store.writer import Writer, create_writer


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

    @classmethod
    def build(cls, settings: Settings) -> Services:
        storage = Storage(settings.database_url, synchronous=settings.sqlite_synchronous)
        return cls(
            settings=settings,
            storage=storage,
            writer=create_writer(storage),
            registry=Registry(storage, settings.count_refresh),
            tokens=FormTokens(
                settings.secret_keys,
                lifetime=settings.token_lifetime,
                min_age=settings.token_min_age,
            ),
            sign_limiter=RateLimiter(settings.rate_sign_per_minute),
            client_limiter=RateLimiter(settings.rate_client_per_minute),
            client_secret=derive_key(settings.secret_keys[0], "client-address"),
        )


def derive_key(secret: str, purpose: str) -> bytes:
    """A key for one purpose, derived from the signing secret, so purposes never share a key."""
    return hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).digest()
