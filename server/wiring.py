"""Wiring: builds the services of a running server from its settings, and the ASGI app on top.

The one place that knows every layer: settings in, a store (engine, writer, registry, and the
jobs with the mail sender they use), the domain's form tokens and rate limiters, and the web app
that serves them. `app_from_environment` is what uvicorn imports in each worker (settings come
from the environment, which `petition-widget serve` fills from its flags).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging

from starlette.types import ASGIApp

from server import settings as settings_module
from server.domain import abuse
from server.domain.form_tokens import FormTokens
from server.domain.ratelimit import RateLimiter
from server.domain.sealing import EmailHasher
from server.domain.signatures import seal_group
from server.settings import Settings
from server.store import jobs
from server.store.clock import Clock, SystemClock
from server.store.registry import Registry
from server.store.runner import JobRunner
from server.store.smtp import SmtpSender
from server.store.storage import Storage
from server.store.writer import Prepare, create_writer
from server.web.app import create_app as create_web_app
from server.web.services import Services


def build_services(settings: Settings, clock: Clock | None = None) -> Services:
    clock = clock or SystemClock()
    storage = Storage(settings.database_url, synchronous=settings.sqlite_synchronous)
    registry = Registry(storage, settings.count_refresh, clock)
    runner = JobRunner(clock, logging.getLogger("petition_widget.jobs"))
    jobs.register(
        runner,
        storage,
        registry,
        clock,
        mail_job=mail_job(settings),
        confirm_lifetime=settings.confirm_lifetime,
    )
    return Services(
        settings=settings,
        storage=storage,
        writer=create_writer(storage, clock.now, sealer(settings)),
        registry=registry,
        tokens=FormTokens(
            settings.secret_keys,
            lifetime=settings.token_lifetime,
            min_age=settings.token_min_age,
        ),
        sign_limiter=RateLimiter(settings.rate_sign_per_minute),
        client_limiter=RateLimiter(settings.rate_client_per_minute),
        network_limiter=network_limiter(settings.rate_net_per_minute),
        client_secret=derive_key(settings.secret_keys[0], "client-address"),
        clock=clock,
        jobs=runner,
        email_hasher=email_hasher(settings),
    )


def network_limiter(per_minute: int) -> RateLimiter:
    """The aggregate limit, per network and petition: a burst of `NETWORK_BURST_MINUTES` of its
    rate, so a classroom behind one NAT counts in full (docs/privacy.md)."""
    return RateLimiter(per_minute, per_minute * abuse.NETWORK_BURST_MINUTES)


def email_hasher(settings: Settings) -> EmailHasher | None:
    """The keyed hash of addresses; None only on PostgreSQL without `EMAIL_HASH_KEY`, where
    `serve` refuses to start (the CLI's other commands then work on clear keys' absence)."""
    return EmailHasher(settings.email_hash_key.encode()) if settings.email_hash_key else None


def sealer(settings: Settings) -> Prepare | None:
    """What the writer runs on each group off the event loop: sealing, when a key is set."""
    if not settings.sealing_public_key:
        return None
    return functools.partial(seal_group, owner_key=settings.sealing_public_key)


def mail_job(settings: Settings) -> jobs.MailJob | None:
    """The mail job's parts, or None when mails cannot be sent (no SMTP_URL or MAIL_FROM): then
    mail rows wait in the outbox until they can."""
    if not (settings.smtp_url and settings.mail_from):
        return None
    hasher = email_hasher(settings)
    return jobs.MailJob(
        sender=SmtpSender.from_url(settings.smtp_url),
        base_url=settings.base_url,
        mail_from=settings.mail_from,
        confirm_lifetime=settings.confirm_lifetime,
        open_address=hasher.open_address if hasher else lambda _: None,
    )


def create_app(settings: Settings) -> ASGIApp:
    return create_web_app(build_services(settings))


def app_from_environment() -> ASGIApp:
    return create_app(settings_module.load())


def derive_key(secret: str, purpose: str) -> bytes:
    """A key for one purpose, derived from the signing secret, so purposes never share a key."""
    return hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).digest()
