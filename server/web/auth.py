"""Who is asking: an access key (or a session naming one) becomes a `Principal`, checked against
the database on every request.

There is no per-process cache of keys: a key revoked by the CLI or on another host stops
working on the very next request everywhere, at the cost of one indexed read per admin request
(admin traffic is small). Every refusal is the same `None`, whatever was wrong (shape, unknown
id, wrong secret, revoked), so an answer never hints at which part was wrong. The rules
themselves are pure, in `server.domain.access`.
"""

from __future__ import annotations

from server.domain import access, access_keys
from server.domain.access import Principal
from server.store.storage import Storage


async def authenticate(storage: Storage, presented: object) -> Principal | None:
    """The principal of a whole key as presented, or None for anything else."""
    key = access_keys.parse(presented)
    if key is None:
        return None
    return access.check(key, await storage.access_key(key.id))


async def by_key_id(storage: Storage, key_id: str) -> Principal | None:
    """The principal of a key named by a signed session (the secret was checked at login);
    None once the key is revoked."""
    row = await storage.access_key(key_id)
    if row is None or not access.usable(row):
        return None
    return access.principal_of(row)
