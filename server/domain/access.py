"""What an access key may see: the pure rules of `Principal`, and the check of a presented key
against the row its id names.

An owner key sees one petition or all; a partner key sees its own petition's public numbers and
only its own partner's data, and manages nothing. Reading the row is the store's work, and
putting the two together is `server.web.auth`'s.
"""

from __future__ import annotations

import dataclasses

from server.domain import access_keys


@dataclasses.dataclass(frozen=True)
class AccessKeyRow:
    id: str
    role: str  # access_keys.OWNER or keys.PARTNER
    petition_id: int | None  # an owner key for every petition has none
    partner_id: int | None
    secret_hash: str
    label: str
    created_at: int
    revoked_at: int | None
    petition_slug: str | None
    partner_code: str | None
    partner_name: str | None


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


def usable(row: AccessKeyRow | None) -> bool:
    if row is None or row.revoked_at is not None or row.role not in access_keys.PREFIXES:
        return False
    # A partner key without its partner (or petition) is broken, not widened to more.
    return row.role == access_keys.OWNER or (
        row.partner_id is not None and row.petition_id is not None
    )


def bearer(authorization: str | None) -> str | None:
    """The key in an `Authorization: Bearer <key>` header."""
    scheme, _, value = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def check(key: access_keys.Key, row: AccessKeyRow | None) -> Principal | None:
    """The principal of a presented key, given the stored row its id names (None when there is
    none). The digest is compared even for an unknown id, so both take the same work."""
    stored = row.secret_hash if row is not None else access_keys.UNKNOWN_DIGEST
    genuine = access_keys.matches(key, stored)
    if not genuine or row is None or row.role != key.role or not usable(row):
        return None
    return principal_of(row)
