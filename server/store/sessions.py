"""Dashboard sessions in the database: a row per signed-in browser, found by a digest of the
session's random id, so that a copy of the disk cannot open one.

The id itself (256 random bits) lives only in the browser's cookie; this table keeps its
SHA-256 digest, the access key that signed in, and when the session began and ends. A cookie is
a session only while its digest is here: signing out deletes the row, revoking a key deletes
its rows in the revocation's own transaction (`end_for_keys`), and the `purge` job deletes the
rows whose time is up. Whoever holds the database and `SECRET_KEYS` can sign any cookie they
like, but cannot turn a digest back into the id that the cookie must carry.

Nothing else is kept: not the CSRF token (the web derives it from the id, see
`web/sessions.py`), not the client's address or browser.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from server.store.engine import Transaction

if TYPE_CHECKING:  # storage.py imports this module, for `end_for_keys` in a revocation
    from server.store.storage import Storage

_START = (
    "INSERT INTO dashboard_sessions (digest, key_id, created_at, expires_at) "
    "VALUES (:digest, :key, :now, :expires)"
)
_FIND = "SELECT key_id FROM dashboard_sessions WHERE digest = :digest AND expires_at >= :now"
_END = "DELETE FROM dashboard_sessions WHERE digest = :digest"
_END_FOR_KEY = "DELETE FROM dashboard_sessions WHERE key_id = :key"
_PURGE = "DELETE FROM dashboard_sessions WHERE expires_at < :now"


async def start(storage: Storage, digest: str, key_id: str, now: int, expires_at: int) -> None:
    """Record a new session of `key_id`, valid until `expires_at` (inclusive)."""
    async with storage.write() as tx:
        await tx.execute(
            _START, {"digest": digest, "key": key_id, "now": now, "expires": expires_at}
        )


async def key_of(storage: Storage, digest: str, now: int) -> str | None:
    """The access key id of the session with this digest, or None: no such session (never
    started, ended, or its key revoked) or one whose time is up. An expired row answers None
    even before the purge has deleted it."""
    value = await storage.database.fetch_val(_FIND, {"digest": digest, "now": now})
    return None if value is None else str(value)


async def end(storage: Storage, digest: str) -> bool:
    """End a session (signing out); False when there was none."""
    async with storage.write() as tx:
        ended = await tx.fetch_val(_END + " RETURNING digest", {"digest": digest})
    return ended is not None


async def end_for_keys(tx: Transaction, key_ids: Sequence[str]) -> None:
    """End every session of these keys, inside the caller's transaction: a revocation and the
    end of its key's sessions commit together, or neither does."""
    for key_id in key_ids:
        await tx.execute(_END_FOR_KEY, {"key": key_id})


async def purge_expired(storage: Storage, now: int) -> int:
    """Delete the sessions whose time was up before `now`; how many went."""
    async with storage.write() as tx:
        gone = await tx.fetch_all(_PURGE + " RETURNING digest", {"now": now})
    return len(gone)
