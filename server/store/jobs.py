"""The store's periodic work, as jobs of the runner (`runner.JobRunner`), registered in one place.

- `count-refresh`: re-reads the shared counters every `COUNT_REFRESH` seconds, so counts taken
  by other workers and hosts reach this one's registry (and petition changes made by the CLI).
- `purge` (every `PURGE_EVERY` seconds): forgets the nonces of expired form tokens (an expired
  token is refused on its own, so its nonce no longer needs to be remembered), and deletes the
  submissions not confirmed within `CONFIRM_LIFETIME`, with all their personal data.
- `mail` (only when mail is configured, `MailJob`): delivers the outbox's `mail` rows, the
  confirmation and "already signed" mails. Each claims its rows as leases (`outbox.deliver`),
  so several workers and hosts share the work. A mail is tried for up to `MAIL_PATIENCE` (24 h,
  backing off to an hour between tries), then given up; so is one the mail server refuses for
  good (a 5xx), and one whose petition is gone. A row given up keeps nothing of its payload.
  Without mail settings the rows wait (`serve` refuses to start when a petition needs them).
- `outbox-purge` (with `mail`, every `PURGE_EVERY` seconds): forgets rows that failed for good
  more than `FAILED_KEPT` (7 days) ago; until then they are counted for the dashboard.
"""

from __future__ import annotations

import dataclasses
import logging

from server.domain import mail
from server.domain.errors import BadPayload
from server.domain.petitions import Entry
from server.store import confirmations, outbox, sessions
from server.store.clock import Clock, Stopping
from server.store.registry import Registry
from server.store.runner import JobRunner
from server.store.signatures import MAIL_TOPIC
from server.store.smtp import PermanentMailError, Sender, TransientMailError
from server.store.storage import Storage

logger = logging.getLogger("petition_widget.mail")

PURGE_EVERY = 600.0  # seconds between purges of expired token nonces and of failed outbox rows
MAIL_PATIENCE = 86_400  # seconds a mail is retried before it is given up
FAILED_KEPT = 7 * 86_400  # seconds a row that failed for good is kept, as a count
MAIL_LEASE = 60.0  # seconds a mail row is leased: room for a whole send (15 s) and more


@dataclasses.dataclass(frozen=True)
class MailJob:
    """What the mail job needs, given by the wiring (the store never reads settings)."""

    sender: Sender
    base_url: str  # links in mails are built on it
    mail_from: str
    confirm_lifetime: int  # seconds; the confirmation mail says in how many days it lapses

    def __post_init__(self) -> None:
        # Checked here, at start-up: a bad sender address found per row would drop every mail.
        if "@" not in self.mail_from:
            raise ValueError("the mail job needs MAIL_FROM, an address")


def register(
    runner: JobRunner,
    storage: Storage,
    registry: Registry,
    clock: Clock,
    *,
    mail_job: MailJob | None = None,
    confirm_lifetime: int = 604_800,
) -> None:
    runner.forever("count-refresh", registry.run)

    async def purge() -> None:
        now = int(clock.now())
        await storage.purge_used_nonces(now)
        await storage.purge_mail_budgets(now)
        await sessions.purge_expired(storage, now)  # dashboard sessions whose time is up
        gone = await confirmations.expire_pending(storage, now, confirm_lifetime)
        if gone:
            logger.info("deleted %d submission(s) never confirmed", gone)

    runner.every("purge", PURGE_EVERY, purge)
    if mail_job is None:
        return

    handler = mail_handler(storage, registry, clock, mail_job)

    async def deliver(stopping: Stopping) -> None:
        await outbox.deliver(storage, clock, MAIL_TOPIC, handler, stopping, lease=MAIL_LEASE)

    async def purge_failed() -> None:
        await outbox.purge_failed(storage, clock.now() - FAILED_KEPT)

    runner.forever("mail", deliver)
    runner.every("outbox-purge", PURGE_EVERY, purge_failed)


def mail_handler(
    storage: Storage, registry: Registry, clock: Clock, job: MailJob
) -> outbox.Handler:
    """The outbox handler for `mail` rows: compose the mail and send it, or give the row up."""

    async def handle(row: outbox.OutboxRow) -> None:
        if clock.now() - row.created_at > MAIL_PATIENCE:
            raise outbox.GiveUp("expired")
        entry = await _entry(storage, registry, row.payload.get("petition_id"))
        if entry is None:
            raise outbox.GiveUp("no_petition")
        try:
            message = mail.compose(
                row.payload,
                entry,
                base_url=job.base_url,
                mail_from=job.mail_from,
                confirm_lifetime=job.confirm_lifetime,
                now=clock.now(),
            )
        except BadPayload:
            raise outbox.GiveUp("bad_payload") from None
        try:
            await job.sender.send(message)
        except PermanentMailError as refused:
            raise outbox.GiveUp(f"permanent:{refused.code}") from None
        except TransientMailError as failed:
            # The outbox logs the type; this says which failure (a kind and a code, no address).
            logger.info("mail for petition %d not sent yet: %s", entry.id, failed)
            raise

    return handle


async def _entry(storage: Storage, registry: Registry, petition_id: object) -> Entry | None:
    """The petition a mail is about: from the registry, else from the database (imported by
    the CLI since this worker last looked). Petitions are never deleted, so None means a row
    that names no petition of ours."""
    if not isinstance(petition_id, int):
        return None
    for entry in registry.entries.values():
        if entry.id == petition_id:
            return entry
    for entry in await storage.petitions():
        if entry.id == petition_id:
            return entry
    return None
