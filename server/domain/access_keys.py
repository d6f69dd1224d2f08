"""Access keys: the secrets that open the dashboard, the exports and keyed API answers.

A key reads `pwo_<id>_<secret>` for an owner and `pwp_<id>_<secret>` for a partner. The id is
public: it names the key in lists, logs and sessions, and finds its row. The secret is 32
characters drawn from 62 (about 190 bits); it is shown once, when the key is made, and stored
only as a SHA-256 digest. A slow hash (bcrypt, scrypt) protects passwords people choose; a
190-bit random secret cannot be guessed, so a fast digest is as safe and keeps every admin
request cheap. Digests are compared in constant time.

Pure: no I/O. Storage keeps the rows; `access` checks a presented key against them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
import secrets
import string

OWNER = "owner"
PARTNER = "partner"
PREFIXES = {OWNER: "pwo", PARTNER: "pwp"}
ROLES = {prefix: role for role, prefix in PREFIXES.items()}

ID_LENGTH = 12  # lower-case letters and digits: about 62 bits, unique by the primary key
SECRET_LENGTH = 32  # letters and digits: about 190 bits
_ID_ALPHABET = string.ascii_lowercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits
_KEY = re.compile(rf"(pwo|pwp)_([a-z0-9]{{{ID_LENGTH}}})_([A-Za-z0-9]{{{SECRET_LENGTH}}})")
_ID = re.compile(rf"[a-z0-9]{{{ID_LENGTH}}}")
_DOMAIN = "petition-widget.access-key"

# Compared against when no row has the presented id, so an unknown id costs the same work.
UNKNOWN_DIGEST = "0" * 64


@dataclasses.dataclass(frozen=True)
class Key:
    role: str
    id: str
    secret: str = dataclasses.field(repr=False)  # never in a repr, a log or a traceback

    @property
    def text(self) -> str:
        """The whole key, as its holder types it."""
        return f"{PREFIXES[self.role]}_{self.id}_{self.secret}"

    @property
    def digest(self) -> str:
        return digest(self.id, self.secret)


def generate(role: str) -> Key:
    """A new random key for `role` (OWNER or PARTNER)."""
    if role not in PREFIXES:
        raise ValueError(f"unknown role {role!r}")
    return Key(
        role=role,
        id="".join(secrets.choice(_ID_ALPHABET) for _ in range(ID_LENGTH)),
        secret="".join(secrets.choice(_SECRET_ALPHABET) for _ in range(SECRET_LENGTH)),
    )


def parse(text: object) -> Key | None:
    """The key in `text` (surrounding white space ignored), or None if it is not shaped like
    one. A well-shaped key is not a valid one: `matches` decides that."""
    if not isinstance(text, str) or len(text) > 100:
        return None
    found = _KEY.fullmatch(text.strip())
    if found is None:
        return None
    return Key(role=ROLES[found[1]], id=found[2], secret=found[3])


def key_id(text: str) -> str | None:
    """The id in a whole key or a bare id (what `keys revoke` accepts), else None."""
    key = parse(text)
    if key is not None:
        return key.id
    text = text.strip()
    return text if _ID.fullmatch(text) else None


def digest(key_id: str, secret: str) -> str:
    """What is stored instead of the secret. The id is hashed in, so equal secrets (which will
    not happen) would still give different digests."""
    return hashlib.sha256(f"{_DOMAIN}\0{key_id}\0{secret}".encode()).hexdigest()


def matches(key: Key, stored_digest: str) -> bool:
    """Whether `key`'s secret is the one whose digest was stored, in constant time."""
    return hmac.compare_digest(key.digest.encode(), stored_digest.encode())
