"""Who is asking, and what they may see: an access key (or a session naming one) becomes a
`Principal`, checked against the database on every request.

There is no per-process cache of keys: a key revoked by the CLI or on another host stops
working on the very next request everywhere, at the cost of one indexed read per admin
request (admin traffic is small). Every refusal is the same `None`, whatever was wrong (shape,
unknown id, wrong secret, revoked), so an answer never hints at which part was wrong.

`Principal`'s rules are pure: an owner key sees one petition or all; a partner key sees its own
petition's public numbers and only its own partner's data, and manages nothing.
"""

from __future__ import annotations

import dataclasses

from server.domain import access_keys
from server.store.storage import AccessKeyRow, Storage


@dataclasses.dataclass(frozen=True)
class Principal:
    key_id: str
    role: str  # access_keys.OWNER or access_keys.PARTNER
    petition_id: int | None  # None: an owner of every petition
    partner_id: int | None  # set for partners only
    partner_code: str | None
    petition_slug: str | None

    @property
    def is_owner(self) -> bool:
        return self.role == access_keys.OWNER

    def may_see(self, petition_id: int) -> bool:
        """Whether this key may see the petition's (non-personal) numbers."""
        return self.petition_id is None or self.petition_id == petition_id

    def may_see_partner(self, petition_id: int, partner_id: int) -> bool:
        """Whether this key may see one partner's numbers and its consenting signers."""
        if not self.may_see(petition_id):
            return False
        return self.is_owner or self.partner_id == partner_id

    def may_manage(self, petition_id: int) -> bool:
        """Open, close, change the goal, export every signer."""
        return self.is_owner and self.may_see(petition_id)


def principal_of(row: AccessKeyRow) -> Principal:
    return Principal(
        key_id=row.id,
        role=row.role,
        petition_id=row.petition_id,
        partner_id=row.partner_id if row.role == access_keys.PARTNER else None,
        partner_code=row.partner_code if row.role == access_keys.PARTNER else None,
        petition_slug=row.petition_slug,
    )


def _usable(row: AccessKeyRow | None) -> bool:
    if row is None or row.revoked_at is not None or row.role not in access_keys.PREFIXES:
        return False
    # A partner key without its partner (or petition) is broken, not widened to more.
    return row.role == access_keys.OWNER or (
        row.partner_id is not None and row.petition_id is not None
    )


async def authenticate(storage: Storage, presented: object) -> Principal | None:
    """The principal of a whole key as presented, or None for anything else."""
    key = access_keys.parse(presented)
    if key is None:
        return None
    row = await storage.access_key(key.id)
    stored = row.secret_hash if row is not None else access_keys.UNKNOWN_DIGEST
    genuine = access_keys.matches(key, stored)  # computed even for an unknown id: same work
    if not genuine or row is None or row.role != key.role or not _usable(row):
        return None
    return principal_of(row)


async def by_key_id(storage: Storage, key_id: str) -> Principal | None:
    """The principal of a key named by a signed session (the secret was checked at login);
    None once the key is revoked."""
    row = await storage.access_key(key_id)
    if row is None or not _usable(row):
        return None
    return principal_of(row)


def bearer(authorization: str | None) -> str | None:
    """The key in an `Authorization: Bearer <key>` header."""
    scheme, _, value = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None
