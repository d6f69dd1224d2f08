"""The store's periodic work, as jobs of the runner (`runner.JobRunner`), registered in one place.

- `count-refresh`: re-reads the shared counters every `COUNT_REFRESH` seconds, so counts taken
  by other workers and hosts reach this one's registry (and petition changes made by the CLI).
- `purge` (every `PURGE_EVERY` seconds): forgets the nonces of expired form tokens (an expired
  token is refused on its own, so its nonce no longer needs to be remembered), and deletes the
  submissions not confirmed within `CONFIRM_LIFETIME`, with all their personal data, the mail
  budgets of past days, and the dashboard sessions whose time is up.
- `retention` (every `RETENTION_EVERY` seconds, an hour): deletes the signer data of petitions
  closed longer than their `[retention] days` (`retention.run`), keeping every count.
- `mail` (only when mail is configured, `MailJob`): delivers the outbox's `mail` rows, the
  confirmation and "already signed" mails. Each claims its rows as leases (`outbox.deliver`),
  so several workers and hosts share the work, `MAIL_BATCH` at a time: the mails of a batch go
  on one SMTP connection, and what became of them is written back in one transaction at its
  end (so a crash mid-batch may send some of them twice; their links are idempotent). A mail
  is tried for up to `MAIL_PATIENCE` (24 h, backing off to an hour between tries), then given
  up; so is one the mail server refuses for good (a 5xx), and one whose petition is gone. A
  row given up keeps nothing of its payload; a confirmation refused for good also takes its
  pending submission with it (`confirmations.forget_unmailable`): nobody can confirm it. Without
  mail settings the rows wait (`serve` refuses to start when a petition needs them).
  When nothing is left to send it resets SQLite's WAL, whose older frames still hold the rows
  of sent mails, or rewrites PostgreSQL's outbox, whose dead rows do (`Engine.scrub`; the
  purge and retention jobs call it too).
- `outbox-purge` (with `mail`, every `PURGE_EVERY` seconds): forgets rows that failed for good
  more than `FAILED_KEPT` (7 days) ago; until then they are counted for the dashboard.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable, Mapping

from server.domain import mail
from server.domain.errors import BadPayload
from server.domain.petitions import Entry
from server.store import confirmations, outbox, retention, sessions, webhook_job, webhooks
from server.store.clock import Clock, Stopping
from server.store.registry import Registry
from server.store.runner import JobRunner
from server.store.signatures import MAIL_TOPIC
from server.store.smtp import Connection, PermanentMailError, Sender, TransientMailError
from server.store.storage import Storage

logger = logging.getLogger("petition_widget.mail")

PURGE_EVERY = 600.0  # seconds between purges of expired token nonces and of failed outbox rows
RETENTION_EVERY = 3600.0  # seconds between looks for petitions past their [retention] days
MAIL_PATIENCE = 86_400  # seconds a mail is retried before it is given up
FAILED_KEPT = 7 * 86_400  # seconds a row that failed for good is kept, as a count
MAIL_LEASE = 60.0  # seconds a mail row is leased: room for a whole send (15 s) and more
# Mail rows claimed at once, and sent on one connection. More would spread the cost of a claim,
# a connection and a write-back over more mails, but lets one worker take a small surge alone.
MAIL_BATCH = 10


@dataclasses.dataclass(frozen=True)
class MailJob:
    """What the mail job needs, given by the wiring (the store never reads settings)."""

    sender: Sender
    base_url: str  # links in mails are built on it
    mail_from: str
    confirm_lifetime: int  # seconds; the confirmation mail says in how many days it lapses
    # Opens what an outbox row keeps encrypted (`EmailHasher.open_mail`); rows
    # written before addresses were encrypted carry it in clear as `to`.
    open_mail: Callable[[str], dict[str, str] | None] = lambda _: None

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
    webhook: webhook_job.WebhookJob | None = None,
) -> None:
    runner.forever("count-refresh", registry.run)
    if webhook is not None:
        # Webhook events (`store/webhook_job.py`): delivered by every process, leases keeping
        # two from sending one event at once; failed ones purged after a week.
        job = webhook

        async def deliver_webhooks(stopping: Stopping) -> None:
            await webhook_job.deliver(storage, clock, job, stopping)

        async def purge_webhooks() -> None:
            await webhooks.purge(storage, clock.now(), webhook_job.FAILED_KEPT)

        runner.forever("webhooks", deliver_webhooks)
        runner.every("webhook-purge", webhook_job.PURGE_EVERY, purge_webhooks)

    async def purge() -> None:
        now = int(clock.now())
        await storage.purge_used_nonces(now)
        await storage.purge_mail_budgets(now)
        await sessions.purge_expired(storage, now)  # dashboard sessions whose time is up
        gone = await confirmations.expire_pending(storage, now, confirm_lifetime)
        if gone:
            logger.info("deleted %d submission(s) never confirmed", gone)
        # What was deleted since (expired submissions, withdrawals) leaves the files too, also
        # on a petition that sends no mail, whose outbox never drains.
        await storage.engine.scrub()

    runner.every("purge", PURGE_EVERY, purge)

    async def retain() -> None:
        for due in await retention.run(storage, await storage.petitions(), clock.now()):
            if due.signatures or due.pending:
                logger.info(
                    "retention: deleted the signer data of %s (%d signatures, %d waiting)",
                    due.slug, due.signatures, due.pending,
                )  # fmt: skip
                await storage.engine.scrub()

    runner.every("retention", RETENTION_EVERY, retain)
    if mail_job is None:
        return

    handler = mail_handler(storage, registry, clock, mail_job)

    async def deliver(stopping: Stopping) -> None:
        await outbox.deliver(
            storage,
            clock,
            MAIL_TOPIC,
            handler,
            stopping,
            batch=MAIL_BATCH,
            lease=MAIL_LEASE,
            scope=handler.batch,
            drained=storage.engine.scrub,
        )

    async def purge_failed() -> None:
        await outbox.purge_failed(storage, clock.now() - FAILED_KEPT)

    runner.forever("mail", deliver)
    runner.every("outbox-purge", PURGE_EVERY, purge_failed)


def mail_handler(storage: Storage, registry: Registry, clock: Clock, job: MailJob) -> MailHandler:
    """The outbox handler for `mail` rows (see `MailHandler`)."""
    return MailHandler(storage, registry, clock, job)


class MailHandler:
    """Handles a `mail` row: renders the mail and sends it, or gives the row up. Inside
    `batch()` (the outbox's scope for a claimed batch) every mail goes on one connection;
    outside it, each on a connection of its own."""

    def __init__(self, storage: Storage, registry: Registry, clock: Clock, job: MailJob) -> None:
        self.storage, self.registry, self.clock, self.job = storage, registry, clock, job
        self._connection: Connection | None = None

    @contextlib.asynccontextmanager
    async def batch(self) -> AsyncIterator[None]:
        async with self.job.sender.connection() as connection:
            self._connection = connection
            try:
                yield
            finally:
                self._connection = None

    async def __call__(self, row: outbox.OutboxRow) -> None:
        if self.clock.now() - row.created_at > MAIL_PATIENCE:
            raise outbox.GiveUp("expired")
        entry = await _entry(self.storage, self.registry, row.payload.get("petition_id"))
        if entry is None:
            raise outbox.GiveUp("no_petition")
        payload = row.payload
        box = payload.get("box", payload.get("to_box"))  # to_box: rows of the first release
        if isinstance(box, str):
            secrets = self.job.open_mail(box)
            if secrets is None:  # another EMAIL_HASH_KEY, or a damaged row: never sendable
                raise outbox.GiveUp("bad_payload")
            payload = {**payload, **secrets}
        try:
            message = mail.render(
                payload,
                entry,
                base_url=self.job.base_url,
                mail_from=self.job.mail_from,
                confirm_lifetime=self.job.confirm_lifetime,
                now=self.clock.now(),
            )
        except BadPayload:
            raise outbox.GiveUp("bad_payload") from None
        try:
            if self._connection is not None:
                await self._connection.send(message)
            else:
                async with self.job.sender.connection() as connection:
                    await connection.send(message)
        except PermanentMailError as refused:
            await self._unmailable(payload)  # opened: its `ref` may be in the box
            raise outbox.GiveUp(f"permanent:{refused.code or refused.kind}") from None
        except TransientMailError as failed:
            # The outbox logs the type; this says which failure (a kind and a code, no address).
            logger.info("mail for petition %d not sent yet: %s", entry.id, failed)
            raise

    async def _unmailable(self, payload: Mapping[str, object]) -> None:
        """A confirmation that can never arrive: its submission can never be confirmed, so its
        personal data goes now rather than at the end of CONFIRM_LIFETIME."""
        ref = payload.get("ref")
        if payload.get("kind") != mail.CONFIRM or not isinstance(ref, str) or not ref:
            return  # "already signed" names a signature that counts: it stays
        if await confirmations.forget_unmailable(self.storage, ref):
            logger.info("deleted a submission whose confirmation was refused for good")


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
