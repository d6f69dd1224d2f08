"""The links in confirmation mails and in answers: `/confirm/{token}` and `/withdraw/{token}`.

A link's token is 32 random bytes (256 bits, URL-safe base64): it cannot be guessed, and it
owes nothing to `SECRET_KEYS`, so rotating those keys breaks no link. Only a SHA-256 digest of
the token is stored: a copied disk holds no working link and cannot make one. (A slow hash
protects secrets people choose; a random 256-bit token needs none.)

A link names a *submission* by its `ref`, another random value that follows the signature from
pending to counted, so a squatter's link never reaches the real owner's signature.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import secrets

CONFIRM = "confirm"
WITHDRAW = "withdraw"
KINDS = (CONFIRM, WITHDRAW)

_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")  # 32 bytes in URL-safe base64, unpadded


@dataclasses.dataclass(frozen=True)
class Link:
    token: str  # goes in the mail or the answer, never into storage
    digest: str  # what storage keeps

    @classmethod
    def new(cls) -> Link:
        token = secrets.token_urlsafe(32)
        return cls(token, digest_of(token))


def digest_of(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def digest(token: object) -> str | None:
    """The stored digest a presented token would have, or None when it cannot be one of ours
    (so a malformed link is refused before any lookup)."""
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        return None
    return digest_of(token)


def new_ref() -> str:
    """A submission's reference: random, and never shown to anyone."""
    return secrets.token_hex(16)


def path(kind: str, token: str) -> str:
    """The link's path on our server (the full URL prepends `BASE_URL`)."""
    assert kind in KINDS
    return f"/{kind}/{token}"
