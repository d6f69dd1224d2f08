"""The registry: the petitions and partners this server knows, and their live counts, in memory.

Every request that shows a petition or its count reads from here, never from the database. The
registry reloads petitions when the shared `content` revision changes (an import or a partner
added by the CLI in another process) and re-reads the counters every `COUNT_REFRESH` seconds, so
signatures taken by other workers or hosts show up within that interval. Signatures taken by
this process show up at once: the writer reports the count after each commit.
"""

from __future__ import annotations

import logging
import time

from server.domain import goals
from server.domain.petitions import Entry
from server.domain.webhooks import Target
from server.store import events
from server.store.clock import Clock, Stopping, SystemClock, pause
from server.store.engine import describe
from server.store.storage import Storage

logger = logging.getLogger("petition_widget.registry")


class Registry:
    def __init__(
        self, storage: Storage, refresh_interval: float, clock: Clock | None = None
    ) -> None:
        self.storage = storage
        self.refresh_interval = refresh_interval
        self.clock: Clock = clock or SystemClock()
        self.revision = -1
        self.entries: dict[str, Entry] = {}
        self.counts: dict[int, int] = {}
        # Enabled webhook endpoints by petition: a `"none"` petition's signatures carry them
        # to the signing plan, which writes their events.
        self.webhooks: dict[int, tuple[Target, ...]] = {}
        self.failure: str | None = None
        self.refreshed_at = 0.0
        # Counts noted while a refresh reads the totals: a commit that lands during the read
        # must not be undone by it.
        self._noted: dict[int, int] | None = None
        # The highest step each `auto_goal` petition has shown here, and what the database
        # holds: a shown goal never decreases, even across restarts (`domain/goals`).
        self.shown_goals: dict[int, int] = {}
        self._stored_goals: dict[int, int] = {}

    def get(self, slug: str) -> Entry | None:
        return self.entries.get(slug)

    def webhook_targets(self, petition_id: int) -> tuple[Target, ...]:
        return self.webhooks.get(petition_id, ())

    def count(self, entry: Entry) -> int:
        return self.counts.get(entry.id, 0)

    def goal(self, entry: Entry) -> int:
        """The goal to show: the stored one, or with `auto_goal` the step above the count once
        it reaches it, never lower than a step shown before."""
        if not entry.petition.auto_goal:
            return entry.goal
        highest = max(self.shown_goals.get(entry.id, 0), entry.shown_goal)
        shown = goals.shown_goal(self.count(entry), entry.goal, highest)
        # Only steps are remembered: an owner who lowers the file's goal corrects it.
        if shown > entry.goal and shown > self.shown_goals.get(entry.id, 0):
            self.shown_goals[entry.id] = shown
        return shown

    async def _keep_shown_goals(self) -> None:
        """Store the steps shown since the last refresh (rare: once per step)."""
        for entry in self.entries.values():
            if not entry.petition.auto_goal:
                continue
            shown = self.goal(entry)
            stored = max(entry.shown_goal, self._stored_goals.get(entry.id, 0))
            if shown > entry.goal and shown > stored:
                await self.storage.raise_shown_goal(entry.id, shown)
                self._stored_goals[entry.id] = shown

    def note_count(self, petition_id: int, count: int) -> None:
        """A count read inside a committed transaction: never older than what we hold."""
        if count > self.counts.get(petition_id, 0):
            self.counts[petition_id] = count
        if self._noted is not None and count > self._noted.get(petition_id, 0):
            self._noted[petition_id] = count

    def lower_count(self, petition_id: int, count: int) -> None:
        """A count that went down in a transaction of this process (a withdrawal): shown at
        once here; other workers follow at their next refresh."""
        self.counts[petition_id] = count

    async def refresh(self) -> None:
        revision = await self.storage.content_revision()
        if revision != self.revision:
            entries = await self.storage.petitions(await self.storage.partners())
            self.entries = {entry.slug: entry for entry in entries}
            self.webhooks = await events.all_targets(self.storage.database)
        self._noted = {}
        try:
            totals = await self.storage.totals()
            noted = self._noted
        finally:
            self._noted = None
        if revision != self.revision:
            # Content changed (an owner may have erased signatures): take the totals as they
            # are, except for commits noted since they were read.
            for petition_id, count in noted.items():
                totals[petition_id] = max(totals.get(petition_id, 0), count)
            self.counts = totals
        else:
            for petition_id, total in totals.items():
                self.note_count(petition_id, total)
        self.revision = revision
        await self._keep_shown_goals()
        self.refreshed_at = time.monotonic()
        self.failure = None

    async def run(self, stopping: Stopping) -> None:
        """Refresh until `stopping` is set (a job of the runner, `jobs.register`), on one held
        connection (on SQLite, `databases` would otherwise open a new connection and thread per
        query). A failed read is logged once per kind and reported by `failure` for the health
        check; the next period tries again."""
        while not stopping.is_set():
            try:
                async with self.storage.session():
                    while not await pause(self.clock, self.refresh_interval, stopping):
                        await self.refresh()
                return
            except Exception as exc:
                reason = describe(exc)
                if self.failure != reason:
                    logger.error("cannot read counts: %s", reason)
                self.failure = reason
                await pause(self.clock, self.refresh_interval, stopping)
