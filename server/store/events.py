"""What happened to a signature's count, said inside the transaction that changed it: the hook
for the webhooks' outbox (issue 17).

An owner's bulk action (`moderation.apply`) calls `counted` for the signatures it restores to
the count and `withdrawn` for those it takes off it, with the transaction that moves their
counters, so an event is written if and only if its change commits. Webhook delivery is
another module's: these functions are the one place it plugs in (an outbox row of its topic
per event, written with `tx`). Until it does, they write nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from server.store.engine import Transaction

#: The reason `withdrawn` gives for an owner's invalidation (a signer's own withdrawal is the
#: webhooks' to name).
INVALIDATED = "invalidated"


@dataclasses.dataclass(frozen=True)
class Moved:
    """A signature whose count changed: enough to name it to a receiver, nothing personal."""

    id: int
    ref: str | None  # the name its links carry (None for a signature made before links)
    partner_id: int | None
    created_at: int


async def counted(tx: Transaction, petition_id: int, signatures: Sequence[Moved], now: int) -> None:
    """`signature.counted`: these signatures count now (an owner restored them)."""


async def withdrawn(
    tx: Transaction, petition_id: int, signatures: Sequence[Moved], reason: str, now: int
) -> None:
    """`signature.withdrawn`: these signatures no longer count, for `reason`
    (`INVALIDATED`: an owner invalidated them; they stay stored, and may be restored)."""
