"""Dashboard sessions: a signed cookie naming the access key that signed in, and the CSRF token
that every state-changing form must carry.

The cookie holds the key's id (never its secret), a random CSRF token and the time of sign-in,
signed with itsdangerous (HMAC-SHA256, a salt of its own, the `SECRET_KEYS` list for rotation)
and valid for `MAX_AGE` seconds from sign-in, not from the last request. A forged, tampered or
expired cookie reads as no session. The key it names is checked against the database on every
request (`auth.by_key_id`), so revoking the key ends its sessions at once.

The CSRF token travels in the signed cookie (`HttpOnly`, `SameSite=Strict`) and in a hidden
form field; a request is accepted only when both agree. Another site can neither read the
cookie nor learn the token, so it cannot forge a form post.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Sequence

from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer

SALT = "petition-widget.admin-session"
MAX_AGE = 12 * 3600  # seconds a sign-in lasts
COOKIE = "pw_admin"
# Over HTTPS the cookie takes the `__Host-` prefix: browsers then refuse it unless it is Secure,
# has Path=/ and no Domain, so a neighbouring subdomain cannot plant a session of its own.
SECURE_COOKIE = "__Host-pw_admin"
MAX_COOKIE_LENGTH = 400  # ours are about 130 characters


@dataclasses.dataclass(frozen=True)
class Session:
    key_id: str
    csrf: str = dataclasses.field(repr=False)
    issued_at: int

    def csrf_ok(self, submitted: object) -> bool:
        """Whether a form's CSRF field is this session's token (in constant time)."""
        if not isinstance(submitted, str):
            return False
        return hmac.compare_digest(submitted.encode(), self.csrf.encode())


class Sessions:
    def __init__(
        self,
        secret_keys: Sequence[str],
        *,
        max_age: int = MAX_AGE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_age = max_age

        class _Signer(TimestampSigner):
            def get_timestamp(self) -> int:
                return int(clock())

        # itsdangerous signs with the last key; our setting lists the signing key first.
        self._serializer = URLSafeTimedSerializer(
            list(reversed(secret_keys)),
            salt=SALT,
            signer=_Signer,
            signer_kwargs={"digest_method": hashlib.sha256},
        )

    def issue(self, key_id: str) -> str:
        """A new session's cookie value, with a new CSRF token."""
        return str(self._serializer.dumps([key_id, secrets.token_urlsafe(18)]))

    def read(self, cookie: str | None) -> Session | None:
        """The session in a cookie value, or None: missing, forged, tampered or expired."""
        if not cookie or len(cookie) > MAX_COOKIE_LENGTH:
            return None
        try:
            payload, signed_at = self._serializer.loads(
                cookie, max_age=self.max_age, return_timestamp=True
            )
        except BadSignature:  # SignatureExpired is one too: both mean "sign in again"
            return None
        if not (
            isinstance(payload, list)
            and len(payload) == 2
            and all(isinstance(part, str) and part for part in payload)
        ):
            return None
        return Session(key_id=payload[0], csrf=payload[1], issued_at=int(signed_at.timestamp()))


def cookie_name(secure: bool) -> str:
    return SECURE_COOKIE if secure else COOKIE
