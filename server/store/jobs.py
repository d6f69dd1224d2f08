"""The store's periodic work, as jobs of the runner (`runner.JobRunner`), registered in one place.

- `count-refresh`: re-reads the shared counters every `COUNT_REFRESH` seconds, so counts taken
  by other workers and hosts reach this one's registry (and petition changes made by the CLI).
- `nonce-purge`: forgets the nonces of expired form tokens every `PURGE_EVERY` seconds; an
  expired token is refused on its own, so its nonce no longer needs to be remembered.

Jobs that deliver the outbox (mail, webhooks) are registered here too as they arrive: each
claims its rows as leases (`outbox.deliver`), so several workers and hosts share the work.
"""

from __future__ import annotations

from server.store.clock import Clock
from server.store.registry import Registry
from server.store.runner import JobRunner
from server.store.storage import Storage

PURGE_EVERY = 600.0  # seconds between purges of expired token nonces


def register(runner: JobRunner, storage: Storage, registry: Registry, clock: Clock) -> None:
    runner.forever("count-refresh", registry.run)

    async def purge_nonces() -> None:
        await storage.purge_used_nonces(int(clock.now()))

    runner.every("nonce-purge", PURGE_EVERY, purge_nonces)
