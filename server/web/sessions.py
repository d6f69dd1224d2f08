"""Dashboard sessions: a random session id in a signed cookie, looked up in the database on
every request, and the CSRF token that every state-changing form must carry.

Signing in makes a session id of 32 random bytes (`secrets`, 256 bits). The browser's cookie
holds it; the database keeps only its SHA-256 digest, the access key that signed in and when the
session ends (`store/sessions.py`). A request is signed in only when the digest of its cookie's
id is in that table and the session's time is not up: so a copy of the disk, even with the
`SECRET_KEYS` file beside it, opens nothing. It can sign any cookie, but holds no id whose
digest is stored (a digest does not give back its id), and a cookie of the old form, a signed
`[key_id, csrf]`, is refused for its shape. Signing out deletes the row, and so does revoking
its key, so a copied cookie dies with them. (SHA-256 and no slow hash: the id is random, not
chosen by a person, and 256 bits cannot be guessed.)

The cookie is still signed with itsdangerous (HMAC-SHA256, a salt of its own, the `SECRET_KEYS`
list for rotation), so junk and old cookies are refused without a query, and it lasts `MAX_AGE`
seconds from sign-in, not from the last request, both in its signed timestamp and in the row.

The CSRF token is derived from the session id (an HMAC keyed with it), not stored: the pages
show it in a hidden field, the forms send it back, and a request is accepted only when it is
the token of the cookie's session. Another site can neither read the cookie (`HttpOnly`,
`SameSite=Strict`) nor learn the token; the token, which pages show, does not give the id back;
and the database, which has neither, cannot make one.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Sequence

from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer

from server.store import sessions as stored
from server.store.storage import Storage

SALT = "petition-widget.admin-session"
MAX_AGE = 12 * 3600  # seconds a sign-in lasts
COOKIE = "pw_admin"
# Over HTTPS the cookie takes the `__Host-` prefix: browsers then refuse it unless it is Secure,
# has Path=/ and no Domain, so a neighbouring subdomain cannot plant a session of its own.
SECURE_COOKIE = "__Host-pw_admin"
MAX_COOKIE_LENGTH = 400  # ours are about 110 characters
_ID = re.compile(r"[A-Za-z0-9_-]{43}")  # 32 random bytes in URL-safe base64, unpadded
_CSRF_PURPOSE = b"petition-widget.csrf"


@dataclasses.dataclass(frozen=True)
class Session:
    """A session found in the database: its id (from the cookie, never logged) and its key."""

    id: str = dataclasses.field(repr=False)
    key_id: str

    @property
    def csrf(self) -> str:
        return csrf_of(self.id)

    def csrf_ok(self, submitted: object) -> bool:
        """Whether a form's CSRF field is this session's token (in constant time)."""
        if not isinstance(submitted, str):
            return False
        return hmac.compare_digest(submitted.encode(), self.csrf.encode())


def digest(session_id: str) -> str:
    """What the database keeps of a session id."""
    return hashlib.sha256(session_id.encode("ascii")).hexdigest()


def csrf_of(session_id: str) -> str:
    """The CSRF token of a session: one-way from its id, so a page that shows it gives the
    session away to no one."""
    mac = hmac.new(session_id.encode("ascii"), _CSRF_PURPOSE, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


class Sessions:
    def __init__(
        self,
        secret_keys: Sequence[str],
        *,
        max_age: int = MAX_AGE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_age = max_age
        self._clock = clock

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

    def new(self) -> tuple[str, str]:
        """A new session id and the cookie value that carries it (nothing is stored yet)."""
        session_id = secrets.token_urlsafe(32)
        return session_id, str(self._serializer.dumps(session_id))

    def session_id(self, cookie: str | None) -> str | None:
        """The session id in a cookie value, or None: missing, forged, tampered, expired, or not
        of our shape (the old `[key_id, csrf]` cookies among them). Not yet a session: only the
        database says whether the id is one (`resume`)."""
        if not cookie or len(cookie) > MAX_COOKIE_LENGTH:
            return None
        try:
            payload = self._serializer.loads(cookie, max_age=self.max_age)
        except BadSignature:  # SignatureExpired is one too: both mean "sign in again"
            return None
        if not isinstance(payload, str) or not _ID.fullmatch(payload):
            return None
        return str(payload)

    async def start(self, storage: Storage, key_id: str) -> str:
        """Begin a session of `key_id`: store its digest, and return the cookie value."""
        session_id, cookie = self.new()
        now = int(self._clock())
        await stored.start(storage, digest(session_id), key_id, now, now + self.max_age)
        return cookie

    async def resume(self, storage: Storage, cookie: str | None) -> Session | None:
        """The session a cookie carries, or None when the database knows no such session (never
        begun, signed out, its key revoked, or its time up)."""
        session_id = self.session_id(cookie)
        if session_id is None:
            return None
        key_id = await stored.key_of(storage, digest(session_id), int(self._clock()))
        return None if key_id is None else Session(session_id, key_id)

    async def end(self, storage: Storage, session: Session) -> None:
        """Sign out: the cookie, wherever a copy of it is, opens nothing from now on."""
        await stored.end(storage, digest(session.id))


def cookie_name(secure: bool) -> str:
    return SECURE_COOKIE if secure else COOKIE
