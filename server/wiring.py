"""Wiring: builds the services of a running server from its settings, and the ASGI app on top.

The one place that knows every layer: settings in, a store (engine, writer, registry, and the
jobs with the mail sender they use), the domain's form tokens and rate limiters, and the web app
that serves them. `app_from_environment` is what uvicorn imports in each worker (settings come
from the environment, which `petition-widget serve` fills from its flags).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from starlette.types import ASGIApp

from server import settings as settings_module
from server.domain import abuse
from server.domain.challenge import Challenges, Switch
from server.domain.form_tokens import FormTokens
from server.domain.ratelimit import FLUSH_EVERY, SLOT, SLOTS, Limits, SharedLimiter
from server.domain.sealing import EmailHasher
from server.domain.signatures import seal_group
from server.settings import Settings
from server.store import jobs, webhook_job
from server.store.clock import Clock, SystemClock
from server.store.limits import LimitStore
from server.store.registry import Registry
from server.store.runner import JobRunner
from server.store.smtp import SmtpSender
from server.store.storage import Storage
from server.store.writer import Prepare, create_writer
from server.web.app import create_app as create_web_app
from server.web.services import Services

# A visitor takes a token with the widget and may need a fresh one after a refused attempt.
TOKENS_PER_SIGNATURE = 2


def build_services(settings: Settings, clock: Clock | None = None) -> Services:
    clock = clock or SystemClock()
    storage = storage_for(settings)
    registry = Registry(storage, settings.count_refresh, clock)
    runner = JobRunner(clock, logging.getLogger("petition_widget.jobs"))
    jobs.register(
        runner,
        storage,
        registry,
        clock,
        mail_job=mail_job(settings),
        confirm_lifetime=settings.confirm_lifetime,
        webhook=webhook_job.WebhookJob(open_event=open_outbox(settings)),
    )
    limits = Limits(clock.now)  # wall time, or a test's manual clock (as the jobs' own)
    limit_store = LimitStore(storage.engine, limits)
    runner.every("limits", FLUSH_EVERY, limit_store.run)
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
        limits=limits,
        limit_store=limit_store,
        sign_limiter=limits.limiter("sign", settings.rate_sign_per_minute),
        client_limiter=limits.limiter("client", settings.rate_client_per_minute),
        token_limiter=limits.limiter("token", settings.rate_sign_per_minute * TOKENS_PER_SIGNATURE),
        # Counted in 1 s slots over 60: a client refused is refused for at most 60 s.
        login_limiter=limits.limiter("login", settings.rate_login_per_minute, slot=1, slots=60),
        network_limiter=network_limiter(limits, settings.rate_net_per_minute),
        clock=clock,
        jobs=runner,
        challenges=Challenges(settings.secret_keys),
        challenge_switch=Switch(limits),
        email_hasher=email_hasher(settings),
    )


def network_limiter(limits: Limits, per_minute: int) -> SharedLimiter:
    """The aggregate limit, per network and petition, on the shared store like the others: its
    window is `NETWORK_BURST_MINUTES` long (slots of 5 × 5 s) and holds that many minutes of its
    rate, so a classroom behind one NAT that signs at once counts in full (docs/privacy.md),
    while a network's long-run rate stays within 92 % to 100 % of `RATE_NET_PER_MINUTE`."""
    minutes = abuse.NETWORK_BURST_MINUTES
    return limits.limiter("network", per_minute * minutes, slot=SLOT * minutes, slots=SLOTS)


def email_hasher(settings: Settings) -> EmailHasher | None:
    """The keyed hash of addresses; None only on PostgreSQL without `EMAIL_HASH_KEY`, where
    `serve` refuses to start (the CLI's other commands then work on clear keys' absence)."""
    return EmailHasher(settings.email_hash_key.encode()) if settings.email_hash_key else None


def storage_for(settings: Settings) -> Storage:
    """The database of `settings`; on a sealed server its webhook events wait encrypted."""
    hasher = email_hasher(settings) if settings.sealing_public_key else None
    return Storage(
        settings.database_url, synchronous=settings.sqlite_synchronous, sealed_events=hasher
    )


def sealer(settings: Settings) -> Prepare | None:
    """What the writer runs on each group off the event loop: sealing, when a key is set."""
    if not settings.sealing_public_key:
        return None
    return functools.partial(seal_group, owner_key=settings.sealing_public_key)


def open_outbox(settings: Settings) -> Callable[[str], dict[str, str] | None]:
    """What opens an outbox row's box, a mail's or a webhook event's (`EmailHasher.open_mail`)."""
    hasher = email_hasher(settings)
    return hasher.open_mail if hasher else lambda _: None


def mail_job(settings: Settings) -> jobs.MailJob | None:
    """The mail job's parts, or None when mails cannot be sent (no SMTP_URL or MAIL_FROM): then
    mail rows wait in the outbox until they can."""
    if not (settings.smtp_url and settings.mail_from):
        return None
    return jobs.MailJob(
        sender=SmtpSender.from_url(settings.smtp_url),
        base_url=settings.base_url,
        mail_from=settings.mail_from,
        confirm_lifetime=settings.confirm_lifetime,
        open_mail=open_outbox(settings),
    )


def create_app(settings: Settings) -> ASGIApp:
    return create_web_app(build_services(settings))


def app_from_environment() -> ASGIApp:
    return create_app(settings_module.load())
