"""A signature on its way to storage, and the consent text it was given under. Pure values."""

from __future__ import annotations

import dataclasses
import functools
import hashlib

from server.domain.validation import Signer


@dataclasses.dataclass(frozen=True)
class Consent:
    """The words a signer saw next to the sign button, kept so that an export can prove what
    each signer agreed to. `version` is a digest of the text: equal texts share one record."""

    lang: str
    text: str

    @functools.cached_property
    def version(self) -> str:
        return hashlib.sha256(f"{self.lang}\n{self.text}".encode()).hexdigest()[:20]


@dataclasses.dataclass(frozen=True)
class NewSignature:
    petition_id: int
    partner_id: int | None  # the partner named in the form token, when it is a known partner
    unknown_partner: str | None  # a partner code from the token that no partner has
    nonce: str  # the form token's nonce: one signature per token
    nonce_expires_at: int  # when the token expires and its nonce may be forgotten
    signer: Signer
    lang: str
    consent: Consent
